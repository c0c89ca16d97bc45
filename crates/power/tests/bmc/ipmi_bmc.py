#!/usr/bin/env python3
"""An IPMI v2.0 (RMCP+) BMC for the maas-power tests, built on pyghmi's BMC server.

    ipmi_bmc.py --port 16230 --user admin --password password [--sha256] [--ports N]

Power state and boot device live in memory; ipmitool reads them back
(`power status`, `chassis bootparam get 5`). pyghmi's server speaks cipher
suite 3 only; --sha256 adds suite 17 (RAKP-HMAC-SHA256, HMAC-SHA256-128,
AES-CBC-128) by overriding the few hash choices in its server session, so
that ipmitool -C 17 and our client can be checked against the same BMC.
With --ports N, N BMCs listen on consecutive ports in one process.
Prints "ready" on stdout once every port is bound.
"""
import argparse
import hashlib
import hmac
import struct
import sys
import uuid

import pyghmi.ipmi.bmc as bmc
import pyghmi.ipmi.private.serversession as serversession
import pyghmi.ipmi.private.session as ipmisession


class Sha256Capable(serversession.ServerSession):
    """Accepts cipher suite 17 as well as 3: same flow, SHA-256 hashes."""

    def create_open_session_response(self, request):
        auth, integrity, conf = request[12], request[20], request[28]
        if (auth, integrity, conf) == (3, 4, 1):
            self.rakphash = hashlib.sha256
            self.currhashlib = hashlib.sha256
            self.currhashlen = 16
            self.icvlen = 16
        else:
            self.rakphash = hashlib.sha1
            self.currhashlib = hashlib.sha1
            self.currhashlen = 12
            self.icvlen = 12
        response = super().create_open_session_response(request)
        if self.rakphash is hashlib.sha256:
            response[16] = 3
            response[24] = 4
        return response

    def _got_rakp1(self, data):
        clienttag = data[0]
        self.Rm = data[8:24]
        self.rolem = data[24]
        self.maxpriv = self.rolem & 0b111
        if data[27] == 0:
            return
        self.username = bytes(data[28:])
        password = self.authdata.get(self.username.decode('utf-8'))
        if password is None:
            return
        self.uuiddata = self.uuid.bytes
        self.Rc = bytearray(struct.pack('16B', *bytearray(__import__('os').urandom(16))))
        hmacdata = (self.clientsessionid + self.managedsessionid + self.Rm + self.Rc
                    + self.uuiddata + bytearray([self.rolem, len(self.username)]) + self.username)
        self.kuid = password.encode('utf-8')
        if self.kg is None:
            self.kg = self.kuid
        authcode = hmac.new(self.kuid, bytes(hmacdata), self.rakphash).digest()
        message = (bytearray([clienttag, 0, 0, 0]) + self.clientsessionid + self.Rc
                   + self.uuiddata + authcode)
        self.send_payload(message, ipmisession.constants.payload_types['rakp2'], retry=False)

    def _got_rakp3(self, data):
        hashfn = self.rakphash
        self.sik = hmac.new(self.kg, bytes(self.Rm + self.Rc)
                            + struct.pack("2B", self.rolem, len(self.username))
                            + self.username, hashfn).digest()
        self.k1 = hmac.new(self.sik, b'\x01' * 20, hashfn).digest()
        self.k2 = hmac.new(self.sik, b'\x02' * 20, hashfn).digest()
        self.aeskey = self.k2[0:16]
        hmacdata = (self.Rc + self.clientsessionid
                    + struct.pack("2B", self.rolem, len(self.username)) + self.username)
        expected = hmac.new(self.kuid, bytes(hmacdata), hashfn).digest()
        if expected != bytes(data[8:]) or data[1] != 0:
            return
        self.localsid = struct.unpack('<I', self.managedsessionid)[0]
        self.ipmicallback = self.handle_client_request
        self._send_rakp4(data[0], 0)

    def _send_rakp4(self, tagvalue, statuscode):
        payload = bytearray([tagvalue, statuscode, 0, 0]) + self.clientsessionid
        hmacdata = bytes(self.Rm + self.managedsessionid + self.uuiddata)
        payload += hmac.new(self.sik, hmacdata, self.rakphash).digest()[:self.icvlen]
        self.send_payload(payload, ipmisession.constants.payload_types['rakp4'], retry=False)
        self.confalgo = 'aes'
        self.integrityalgo = 'sha1'  # pyghmi's flag for "authenticated"; the hash is currhashlib
        self.sequencenumber = 1
        self.sessionid = struct.unpack('<I', struct.pack('4B', *self.clientsessionid))[0]


class TestBmc(bmc.Bmc):
    def __init__(self, authdata, port, address):
        super().__init__(authdata, port=port, address=address)
        self.powerstate = 'off'
        self.bootdevice = 'default'

    def get_power_state(self):
        return self.powerstate

    def power_on(self):
        self.powerstate = 'on'

    def power_off(self):
        self.powerstate = 'off'

    def power_cycle(self):
        self.powerstate = 'on'

    def power_reset(self):
        pass

    def power_shutdown(self):
        self.powerstate = 'off'

    def get_boot_device(self):
        return self.bootdevice

    def set_boot_device(self, bootdevice):
        self.bootdevice = bootdevice

    def get_system_guid(self):
        return uuid.UUID('7a5f2c1e-77aa-4b1d-9c77-000000007701')

    def cold_reset(self):
        return 0


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('--address', default='127.0.0.1')
    parser.add_argument('--port', type=int, required=True)
    parser.add_argument('--ports', type=int, default=1)
    parser.add_argument('--user', default='admin')
    parser.add_argument('--password', default='password')
    parser.add_argument('--sha256', action='store_true')
    args = parser.parse_args()
    if args.sha256:
        serversession.ServerSession = Sha256Capable
    for port in range(args.port, args.port + args.ports):
        TestBmc({args.user: args.password}, port, args.address)
    print('ready', flush=True)
    bmc.Bmc.listen(timeout=30)


if __name__ == '__main__':
    sys.exit(main())
