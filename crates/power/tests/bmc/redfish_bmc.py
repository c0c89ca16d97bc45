#!/usr/bin/env python3
"""A Redfish BMC for the maas-power tests: sushy-tools' emulator with its fake driver.

    redfish_bmc.py --port 18000 --state-dir DIR [--user admin --password secret]
                   [--cert FILE --key FILE] [--systems N]

sushy-tools' fake driver applies power changes 1-11 s after the request, to
look like hardware; here they apply after 0.3 s so the tests stay short but
still have to wait for the transition. Basic auth uses sushy-tools' own
htpasswd (bcrypt) support. With --cert/--key it serves HTTPS.
"""
import argparse
import os
import sys
import time

import bcrypt
from sushy_tools.emulator import main as emulator
from sushy_tools.emulator.resources.systems import fakedriver

DELAY = 0.3


class QuickFakeDriver(fakedriver.FakeDriver):
    def set_power_state(self, identity, state):
        system = self._get(identity)
        if 'On' in state:
            pending = 'On'
        elif state in ('ForceOff', 'GracefulShutdown'):
            pending = 'Off'
        elif 'Restart' in state:
            system['power_state'] = 'Off'
            pending = 'On'
        else:
            raise fakedriver.error.NotSupportedError('Power state %s is not supported' % state)
        if system['power_state'] != pending:
            self._update(system, pending_power={'power_state': pending,
                                                'apply_time': time.time() + DELAY})


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('--address', default='127.0.0.1')
    parser.add_argument('--port', required=True)
    parser.add_argument('--state-dir', required=True)
    parser.add_argument('--user', default='admin')
    parser.add_argument('--password', default='secret')
    parser.add_argument('--cert')
    parser.add_argument('--key')
    parser.add_argument('--systems', type=int, default=1)
    args = parser.parse_args()

    auth_file = os.path.join(args.state_dir, 'htpasswd')
    with open(auth_file, 'w') as out:
        digest = bcrypt.hashpw(args.password.encode(), bcrypt.gensalt(rounds=4)).decode()
        out.write('%s:%s\n' % (args.user, digest))
    systems = [{
        'uuid': '7a5f2c1e-77aa-4b1d-9c77-%012d' % n,
        'name': 'node%d' % n,
        'power_state': 'Off',
        'boot_device': 'Hdd',
        'external_notifier': False,
        'nics': [{'mac': '52:54:00:77:00:%02x' % n, 'ip': '10.77.0.%d' % (100 + n)}],
    } for n in range(1, args.systems + 1)]
    emulator.app.configure(extra_config={
        'SUSHY_EMULATOR_FAKE_SYSTEMS': systems,
        'SUSHY_EMULATOR_STATE_DIR': args.state_dir,
        'SUSHY_EMULATOR_AUTH_FILE': auth_file,
    })
    fakedriver.FakeDriver = QuickFakeDriver
    emulator.fakedriver.FakeDriver = QuickFakeDriver
    argv = ['sushy-emulator', '--fake', '-i', args.address, '-p', str(args.port)]
    if args.cert:
        argv += ['--ssl-certificate', args.cert, '--ssl-key', args.key]
    sys.argv = argv
    return emulator.main()


if __name__ == '__main__':
    sys.exit(main())
