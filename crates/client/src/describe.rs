//! Turning a cached describe document into the CLI's command tree, as maascli does.
//!
//! Each resource becomes a handler command named from the resource name; each action
//! becomes a sub-command. Nothing here is specific to one endpoint, so a new endpoint on
//! the region needs no change in the CLI.

use serde_json::Value;

/// Why part of a describe document could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DescribeError {
    #[error("the describe document has no \"resources\" list")]
    NoResources,
    #[error("resource {index} of the describe document has no name")]
    UnnamedResource { index: usize },
    #[error("handler {handler:?} in the describe document has no {field:?} of the right type")]
    BadHandler {
        handler: String,
        field: &'static str,
    },
}

/// One handler command (`machines`, `machine`, …).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandlerCommand {
    /// Command name, e.g. `boot-resources`.
    pub name: String,
    /// The resource name in the document, e.g. `BootResourcesHandler`.
    pub resource_name: String,
    pub title: String,
    pub body: String,
    /// Absolute path template, e.g. `/MAAS/api/2.0/machines/{system_id}/`.
    pub path: String,
    /// URI placeholders, in order; they become positional arguments.
    pub params: Vec<String>,
    pub actions: Vec<ActionCommand>,
}

impl HandlerCommand {
    pub fn action(&self, name: &str) -> Option<&ActionCommand> {
        self.actions.iter().find(|action| action.name == name)
    }
}

/// One action sub-command (`read`, `power-on`, …).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionCommand {
    /// Command name, e.g. `power-on`.
    pub name: String,
    /// The action name in the document, e.g. `power_on`.
    pub action_name: String,
    pub method: String,
    pub op: Option<String>,
    pub title: String,
    pub body: String,
    /// Whether `key=value` arguments are accepted: the doc body mentions `:param`.
    pub accepts_data: bool,
}

/// The commands one profile offers, plus the parts of its document that had to be skipped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommandSet {
    /// Sorted by name.
    pub handlers: Vec<HandlerCommand>,
    pub problems: Vec<DescribeError>,
}

impl CommandSet {
    /// Builds the commands for a profile; `anonymous` profiles see only anonymous handlers.
    ///
    /// With credentials, a resource's actions are those of its `auth` handler followed by
    /// those of its `anon` handler whose names are not taken yet. The handler's doc, path
    /// and params come from `auth`, falling back to `anon`.
    pub fn from_description(description: &Value, anonymous: bool) -> Result<Self, DescribeError> {
        let resources = description
            .get("resources")
            .and_then(Value::as_array)
            .ok_or(DescribeError::NoResources)?;
        let mut set = CommandSet::default();
        for (index, resource) in resources.iter().enumerate() {
            match handler_for(resource, index, anonymous) {
                Ok(Some(handler)) => set.handlers.push(handler),
                Ok(None) => {}
                Err(problem) => set.problems.push(problem),
            }
        }
        set.handlers.sort_by(|a, b| a.name.cmp(&b.name));
        // Two resources with one command name would make maascli's parser abort; keep the first.
        set.handlers
            .dedup_by(|later, earlier| later.name == earlier.name);
        Ok(set)
    }

    pub fn handler(&self, name: &str) -> Option<&HandlerCommand> {
        self.handlers.iter().find(|handler| handler.name == name)
    }
}

fn handler_for(
    resource: &Value,
    index: usize,
    anonymous: bool,
) -> Result<Option<HandlerCommand>, DescribeError> {
    let resource_name = resource
        .get("name")
        .and_then(Value::as_str)
        .ok_or(DescribeError::UnnamedResource { index })?;
    let auth = resource.get("auth").filter(|handler| !handler.is_null());
    let anon = resource.get("anon").filter(|handler| !handler.is_null());
    let active: Vec<&Value> = if anonymous {
        anon.into_iter().collect()
    } else {
        auth.into_iter().chain(anon).collect()
    };
    let mut actions: Vec<ActionCommand> = Vec::new();
    for handler in active {
        let handler_name = handler
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or(resource_name);
        let bad = |field| DescribeError::BadHandler {
            handler: handler_name.to_owned(),
            field,
        };
        let listed = handler
            .get("actions")
            .and_then(Value::as_array)
            .ok_or_else(|| bad("actions"))?;
        for action in listed {
            let action = parse_action(action).ok_or_else(|| bad("actions"))?;
            if !actions.iter().any(|known| known.name == action.name) {
                actions.push(action);
            }
        }
    }
    if actions.is_empty() {
        return Ok(None);
    }
    let Some(shown) = auth.or(anon) else {
        return Ok(None);
    };
    let shown_name = shown
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or(resource_name)
        .to_owned();
    let bad = |field| DescribeError::BadHandler {
        handler: shown_name.clone(),
        field,
    };
    let path = shown
        .get("path")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("path"))?
        .to_owned();
    let params = match shown.get("params") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(params)) => params
            .iter()
            .map(|param| param.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| bad("params"))?,
        Some(_) => return Err(bad("params")),
    };
    let (title, body) = parse_docstring(shown.get("doc").and_then(Value::as_str).unwrap_or(""));
    Ok(Some(HandlerCommand {
        name: handler_command_name(resource_name),
        resource_name: resource_name.to_owned(),
        title,
        body,
        path,
        params,
        actions,
    }))
}

fn parse_action(action: &Value) -> Option<ActionCommand> {
    let action_name = action.get("name")?.as_str()?;
    let method = action.get("method")?.as_str()?.to_owned();
    let op = match action.get("op") {
        None | Some(Value::Null) => None,
        Some(Value::String(op)) => Some(op.clone()),
        Some(_) => return None,
    };
    let (title, body) = parse_docstring(action.get("doc").and_then(Value::as_str).unwrap_or(""));
    Some(ActionCommand {
        name: safe_name(action_name),
        action_name: action_name.to_owned(),
        method,
        op,
        accepts_data: accepts_data(&body),
        title,
        body,
    })
}

/// maascli's rule: `key=value` arguments exist only if the doc body contains `:param`.
pub fn accepts_data(body: &str) -> bool {
    body.contains(":param")
}

/// The words of maascli's CamelCase regex `([A-Z]*[a-z0-9]+|[A-Z]+)(?:(?=[^a-z0-9])|\Z)`,
/// found left to right without overlap.
pub fn camel_case_words(text: &str) -> Vec<&str> {
    let bytes = text.as_bytes();
    let is_upper = |b: u8| b.is_ascii_uppercase();
    let is_lower_or_digit = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    // The lookahead: end of text, or a character that is not [a-z0-9].
    let boundary_at = |index: usize| index == bytes.len() || !is_lower_or_digit(bytes[index]);
    let mut words = Vec::new();
    let mut start = 0;
    while start < bytes.len() {
        if let Some(end) = match_word_at(bytes, start, is_upper, is_lower_or_digit, boundary_at) {
            words.push(&text[start..end]);
            start = end;
        } else {
            start += 1;
        }
    }
    words
}

/// Tries the regex at `start`, with the backtracking Python's engine would do.
fn match_word_at(
    bytes: &[u8],
    start: usize,
    is_upper: impl Fn(u8) -> bool,
    is_lower_or_digit: impl Fn(u8) -> bool,
    boundary_at: impl Fn(usize) -> bool,
) -> Option<usize> {
    let mut uppers_end = start;
    while uppers_end < bytes.len() && is_upper(bytes[uppers_end]) {
        uppers_end += 1;
    }
    // First alternative: [A-Z]*[a-z0-9]+, trying the longest upper-case run first.
    for split in (start..=uppers_end).rev() {
        let mut end = split;
        while end < bytes.len() && is_lower_or_digit(bytes[end]) {
            end += 1;
        }
        // [a-z0-9]+ is greedy and the lookahead needs a non-[a-z0-9] after it, so only the
        // longest run can succeed; it always does when it is not empty.
        if end > split && boundary_at(end) {
            return Some(end);
        }
    }
    // Second alternative: [A-Z]+, longest first, followed by the lookahead.
    (start + 1..=uppers_end).rev().find(|&end| boundary_at(end))
}

/// maascli's `handler_command_name`: `RackControllersHandler` → `rack-controllers`.
pub fn handler_command_name(resource_name: &str) -> String {
    camel_case_words(resource_name)
        .into_iter()
        .map(str::to_lowercase)
        .filter(|word| word != "handler")
        .collect::<Vec<_>>()
        .join("-")
}

/// maascli's `safe_name`: `power_on` → `power-on`.
pub fn safe_name(name: &str) -> String {
    camel_case_words(name).join("-")
}

/// maascli's `parse_docstring`: clean the doc like `inspect.cleandoc`, then split it at the
/// first blank line into a one-line title and a body.
pub fn parse_docstring(doc: &str) -> (String, String) {
    let doc = clean_doc(doc);
    let (title, body) = split_first_paragraph(&doc);
    let title = python_splitlines(title)
        .into_iter()
        .map(str::trim)
        .collect::<Vec<_>>()
        .join(" ");
    let body = body.replace("\r\n", "\n").replace('\r', "\n");
    (title, body)
}

/// `inspect.cleandoc` (Python 3.11): expand tabs, strip the first line, remove the common
/// indentation of the other lines, drop empty lines at both ends.
fn clean_doc(doc: &str) -> String {
    let lines: Vec<String> = doc.split('\n').map(expand_tabs).collect();
    let margin = lines
        .iter()
        .skip(1)
        .filter_map(|line| {
            let content = line.trim_start();
            (!content.is_empty()).then(|| line.len() - content.len())
        })
        .min();
    let mut cleaned: Vec<String> = Vec::with_capacity(lines.len());
    for (index, line) in lines.into_iter().enumerate() {
        if index == 0 {
            cleaned.push(line.trim_start().to_owned());
        } else if let Some(margin) = margin {
            cleaned.push(drop_chars(&line, margin));
        } else {
            cleaned.push(line);
        }
    }
    while cleaned.last().is_some_and(String::is_empty) {
        cleaned.pop();
    }
    let first = cleaned
        .iter()
        .position(|line| !line.is_empty())
        .unwrap_or(cleaned.len());
    cleaned[first..].join("\n")
}

/// `line[margin:]`, counted in characters as Python does.
fn drop_chars(line: &str, margin: usize) -> String {
    line.chars().skip(margin).collect()
}

/// `str.expandtabs()` with 8-column tab stops.
fn expand_tabs(line: &str) -> String {
    if !line.contains('\t') {
        return line.to_owned();
    }
    let mut out = String::with_capacity(line.len() + 8);
    let mut column = 0;
    for c in line.chars() {
        match c {
            '\t' => {
                let spaces = 8 - column % 8;
                out.extend(std::iter::repeat_n(' ', spaces));
                column += spaces;
            }
            '\n' | '\r' => {
                out.push(c);
                column = 0;
            }
            _ => {
                out.push(c);
                column += 1;
            }
        }
    }
    out
}

/// Splits at the first match of `(?:\r\n){2,}|\r{2,}|\n{2,}`.
fn split_first_paragraph(doc: &str) -> (&str, &str) {
    let bytes = doc.as_bytes();
    for start in 0..bytes.len() {
        let rest = &bytes[start..];
        let end = if rest.starts_with(b"\r\n\r\n") {
            let mut end = start;
            while bytes[end..].starts_with(b"\r\n") {
                end += 2;
            }
            end
        } else if rest.starts_with(b"\r\r") || rest.starts_with(b"\n\n") {
            let repeated = rest[0];
            let mut end = start;
            while bytes.get(end) == Some(&repeated) {
                end += 1;
            }
            end
        } else {
            continue;
        };
        return (&doc[..start], &doc[end..]);
    }
    (doc, "")
}

/// `str.splitlines()`: every Python line boundary, without the separators.
fn python_splitlines(text: &str) -> Vec<&str> {
    let mut lines = Vec::new();
    let mut start = 0;
    let mut chars = text.char_indices().peekable();
    while let Some((index, c)) = chars.next() {
        let is_break = matches!(
            c,
            '\n' | '\r'
                | '\u{0b}'
                | '\u{0c}'
                | '\u{1c}'
                | '\u{1d}'
                | '\u{1e}'
                | '\u{85}'
                | '\u{2028}'
                | '\u{2029}'
        );
        if !is_break {
            continue;
        }
        lines.push(&text[start..index]);
        let mut next = index + c.len_utf8();
        if c == '\r'
            && chars
                .peek()
                .is_some_and(|&(_, following)| following == '\n')
        {
            chars.next();
            next += 1;
        }
        start = next;
    }
    if start < text.len() {
        lines.push(&text[start..]);
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handler_command_names_follow_maascli() {
        fn check(resource: &str, expected: &str) {
            assert_eq!(handler_command_name(resource), expected, "{resource}");
        }
        check("MachinesHandler", "machines");
        check("MachineHandler", "machine");
        check("RackControllersHandler", "rack-controllers");
        check("SSHKeysHandler", "sshkeys");
        check("SSHKeyHandler", "sshkey");
        check("DNSResourceRecordsHandler", "dnsresource-records");
        check("BootSourceSelectionsHandler", "boot-source-selections");
        check("BootResourcesHandler", "boot-resources");
        check("IPRangesHandler", "ipranges");
        check("IPAddressesHandler", "ipaddresses");
        check("DHCPSnippetsHandler", "dhcpsnippets");
        check("VmHostsHandler", "vm-hosts");
        check("MaasHandler", "maas");
        check("VersionHandler", "version");
        check("AnonNodesHandler", "anon-nodes");
        check("VmfsDatastoresHandler", "vmfs-datastores");
        check("ReservedIpsHandler", "reserved-ips");
    }

    #[test]
    fn action_names_follow_maascli() {
        fn check(action: &str, expected: &str) {
            assert_eq!(safe_name(action), expected, "{action}");
        }
        check("power_on", "power-on");
        check("create_authorisation_token", "create-authorisation-token");
        check("set_workload_annotations", "set-workload-annotations");
        check("import", "import");
        check("read", "read");
        check("query_power_state", "query-power-state");
        check("details", "details");
    }

    #[test]
    fn camel_case_words_match_pythons_findall() {
        fn check(text: &str, expected: &[&str]) {
            assert_eq!(camel_case_words(text), expected, "{text}");
        }
        check("MachinesHandler", &["Machines", "Handler"]);
        check("SSHKeys", &["SSHKeys"]);
        check("DNSResource", &["DNSResource"]);
        check("IPv6Thing", &["IPv6", "Thing"]);
        check("ABC", &["ABC"]);
        check("ABC_def", &["ABC", "def"]);
        check("a__b", &["a", "b"]);
        check("x1Y", &["x1", "Y"]);
        check("", &[]);
    }

    #[test]
    fn param_rule_looks_only_at_the_body() {
        fn check(doc: &str, expected: bool) {
            let (_, body) = parse_docstring(doc);
            assert_eq!(accepts_data(&body), expected, "{doc:?}");
        }
        check(
            "Deploy\n\n:param distro_series: Optional.\n:type distro_series: String\n\n ",
            true,
        );
        check("Title\n\nDescription\n\n :param x: Required.", true);
        check("Read the machine\n\nReturns the machine.\n\n", false);
        check(":param x: in the title only", false);
        check("Title :param x\nstill the title", false);
        check("\n\n\nTitle\n\n:param x:", true);
        check("\n\n:param x: leading blank lines are dropped first", false);
        check("Title\r\n\r\n:param x:", true);
        check("", false);
    }

    #[test]
    fn docstrings_split_into_title_and_body() {
        fn check(doc: &str, title: &str, body: &str) {
            assert_eq!(
                parse_docstring(doc),
                (title.to_owned(), body.to_owned()),
                "{doc:?}"
            );
        }
        check(
            "One machine.\n\nAddressed by id.",
            "One machine.",
            "Addressed by id.",
        );
        check(
            "Long\n    title\n\n    Body\n      indented",
            "Long title",
            "Body\n  indented",
        );
        check("Only a title", "Only a title", "");
        check("A\r\n\r\nB\r\nC", "A", "B\nC");
        check("  Tab\tbed\n\n\tx", "Tab   bed", "x");
    }
}
