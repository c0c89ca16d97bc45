//! The kernel command line: where the agent's orders start.
//!
//! MAAS puts `cloud-config-url=<preseed url>` on the line (§3.4); older templates use
//! `url=`. `BOOTIF=01-<mac>` names the interface the machine booted from, `log_host` and
//! `log_port` the syslog sink. `cc:...end_cc` is cloud-init's inline config and is skipped
//! whole. Options after `---` are for the installed system's boot loader. The agent's own
//! switches are `maas.agent.*`.

use std::collections::BTreeMap;

/// What the command line tells the agent.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Cmdline {
    /// The preseed URL (`cloud-config-url=`, or `url=`).
    pub preseed_url: Option<String>,
    /// The boot interface's MAC from `BOOTIF=01-aa-bb-cc-dd-ee-ff`, as `aa:bb:cc:dd:ee:ff`.
    pub boot_mac: Option<String>,
    pub log_host: Option<String>,
    pub log_port: Option<u16>,
    /// Options after `---`, for the deployed system's kernel command line.
    pub extra_opts: Vec<String>,
    /// `maas.agent.<key>=<value>` switches (`maas.agent.debug`, `maas.agent.end=shell`, ...).
    pub agent: BTreeMap<String, String>,
}

impl Cmdline {
    /// Parses a command line. Never fails: unknown or malformed words are ignored, since a
    /// machine must still report whatever it can.
    pub fn parse(text: &str) -> Self {
        let mut cmdline = Cmdline::default();
        let mut after_separator = false;
        let mut in_cloud_config = false;
        for word in split_words(text) {
            if in_cloud_config {
                if word.ends_with("end_cc") {
                    in_cloud_config = false;
                }
                continue;
            }
            if word.starts_with("cc:") {
                in_cloud_config = !word.ends_with("end_cc");
                continue;
            }
            if word == "---" {
                after_separator = true;
                continue;
            }
            if after_separator && !word.starts_with("BOOTIF=") {
                cmdline.extra_opts.push(word);
                continue;
            }
            let (key, value) = match word.split_once('=') {
                Some((key, value)) => (key, value),
                None => (word.as_str(), ""),
            };
            match key {
                "cloud-config-url" => cmdline.preseed_url = Some(value.to_owned()),
                "url" if cmdline.preseed_url.is_none() => {
                    cmdline.preseed_url = Some(value.to_owned())
                }
                "BOOTIF" => cmdline.boot_mac = parse_bootif(value),
                "log_host" => cmdline.log_host = Some(value.to_owned()),
                "log_port" => cmdline.log_port = value.parse().ok(),
                _ => {
                    if let Some(name) = key.strip_prefix("maas.agent.") {
                        cmdline.agent.insert(name.to_owned(), value.to_owned());
                    }
                }
            }
        }
        cmdline
    }

    /// An agent switch, `maas.agent.<key>`.
    pub fn agent_option(&self, key: &str) -> Option<&str> {
        self.agent.get(key).map(String::as_str)
    }
}

/// Splits on whitespace; double quotes group words (`a="b c"`), as the kernel does.
fn split_words(text: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    let mut started = false;
    for character in text.chars() {
        match character {
            '"' => {
                quoted = !quoted;
                started = true;
            }
            c if c.is_whitespace() && !quoted => {
                if started {
                    words.push(std::mem::take(&mut current));
                    started = false;
                }
            }
            c => {
                current.push(c);
                started = true;
            }
        }
    }
    if started {
        words.push(current);
    }
    words
}

/// `01-aa-bb-cc-dd-ee-ff` (hardware type 1, Ethernet) to `aa:bb:cc:dd:ee:ff`.
fn parse_bootif(value: &str) -> Option<String> {
    let rest = value.strip_prefix("01-")?;
    let octets: Vec<&str> = rest.split('-').collect();
    if octets.len() != 6
        || !octets
            .iter()
            .all(|octet| octet.len() == 2 && octet.chars().all(|c| c.is_ascii_hexdigit()))
    {
        return None;
    }
    Some(octets.join(":").to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maas_commissioning_line() {
        let line = "nomodeset root=squash:http://10.0.0.1:5248/images/x/squashfs ip=::::node1:BOOTIF:dhcp ip6=off \
            cc:{'datasource_list': ['MAAS']}end_cc \
            cloud-config-url=http://10.0.0.1:5248/MAAS/metadata/latest/by-id/abc123/?op=get_preseed \
            ro overlayroot=tmpfs overlayroot_cfgdisk=disabled log_host=10.0.0.1 log_port=5247 --- console=ttyS0 BOOTIF=01-52-54-00-AB-CD-EF";
        let cmdline = Cmdline::parse(line);
        assert_eq!(
            cmdline.preseed_url.as_deref(),
            Some("http://10.0.0.1:5248/MAAS/metadata/latest/by-id/abc123/?op=get_preseed")
        );
        assert_eq!(cmdline.boot_mac.as_deref(), Some("52:54:00:ab:cd:ef"));
        assert_eq!(cmdline.log_host.as_deref(), Some("10.0.0.1"));
        assert_eq!(cmdline.log_port, Some(5247));
        assert_eq!(cmdline.extra_opts, vec!["console=ttyS0".to_owned()]);
    }

    #[test]
    fn inline_cloud_config_with_spaces_is_skipped() {
        let cmdline = Cmdline::parse(
            "cc: {datasource_list: [MAAS], x: 1} end_cc url=http://h/p maas.agent.debug",
        );
        assert_eq!(cmdline.preseed_url.as_deref(), Some("http://h/p"));
        assert_eq!(cmdline.agent_option("debug"), Some(""));
    }

    #[test]
    fn bad_words_are_ignored() {
        let cmdline = Cmdline::parse("BOOTIF=01-zz log_port=notanumber \"unterminated quote =");
        assert_eq!(cmdline.boot_mac, None);
        assert_eq!(cmdline.log_port, None);
        assert_eq!(cmdline.preseed_url, None);
        assert_eq!(Cmdline::parse(""), Cmdline::default());
    }

    #[test]
    fn cloud_config_url_wins_over_url() {
        let cmdline = Cmdline::parse("cloud-config-url=http://a/ url=http://b/");
        assert_eq!(cmdline.preseed_url.as_deref(), Some("http://a/"));
        let cmdline = Cmdline::parse("url=http://b/ cloud-config-url=http://a/");
        assert_eq!(cmdline.preseed_url.as_deref(), Some("http://a/"));
    }

    #[test]
    fn quoted_values() {
        let cmdline = Cmdline::parse("maas.agent.end=\"shell now\" log_host=h");
        assert_eq!(cmdline.agent_option("end"), Some("shell now"));
    }
}
