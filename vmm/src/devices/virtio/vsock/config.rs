//! `--vsock cid=N,uds=PATH`: what the user asks for, checked before anything is created.

use std::path::PathBuf;

/// The lowest CID a guest may have: 0 (hypervisor), 1 (local) and 2 (host) are reserved.
pub const MIN_GUEST_CID: u64 = 3;
/// The highest: the config field is 64 bits but its upper half is reserved (§5.10.4), and
/// u32::MAX is VMADDR_CID_ANY.
pub const MAX_GUEST_CID: u64 = u32::MAX as u64 - 1;

/// A `--vsock` argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VsockConfig {
    /// The guest's CID.
    pub cid: u64,
    /// The Unix socket host programs connect to; guest connections to port P go to `PATH_P`.
    pub uds: PathBuf,
}

impl std::str::FromStr for VsockConfig {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let mut cid = None;
        let mut uds = None;
        for field in text.split(',') {
            let Some((key, value)) = field.split_once('=') else {
                return Err(format!(
                    "'{text}': '{field}' is not KEY=VALUE; expected cid=N,uds=PATH"
                ));
            };
            match key {
                "cid" if cid.is_some() => return Err(format!("'{text}': cid given twice")),
                "uds" if uds.is_some() => return Err(format!("'{text}': uds given twice")),
                "cid" => cid = Some(parse_cid(value).map_err(|e| format!("'{text}': {e}"))?),
                "uds" if value.is_empty() => {
                    return Err(format!("'{text}': uds needs a path"));
                }
                "uds" => uds = Some(PathBuf::from(value)),
                _ => {
                    return Err(format!(
                        "'{text}': unknown key '{key}'; expected cid=N,uds=PATH"
                    ));
                }
            }
        }
        match (cid, uds) {
            (Some(cid), Some(uds)) => Ok(VsockConfig { cid, uds }),
            (None, _) => Err(format!(
                "'{text}': cid=N is required (N >= {MIN_GUEST_CID})"
            )),
            (_, None) => Err(format!("'{text}': uds=PATH is required")),
        }
    }
}

/// A guest CID, decimal, in [MIN_GUEST_CID, MAX_GUEST_CID].
pub fn parse_cid(value: &str) -> Result<u64, String> {
    let cid: u64 = value
        .parse()
        .map_err(|_| format!("cid '{value}' is not a number"))?;
    check_cid(cid)?;
    Ok(cid)
}

pub fn check_cid(cid: u64) -> Result<(), String> {
    if cid < MIN_GUEST_CID {
        return Err(format!(
            "cid {cid} is reserved; a guest's CID must be at least {MIN_GUEST_CID}"
        ));
    }
    if cid > MAX_GUEST_CID {
        return Err(format!(
            "cid {cid} is too large; a guest's CID must be at most {MAX_GUEST_CID}"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vsock_config_parses_both_keys_in_any_order() {
        let c: VsockConfig = "cid=3,uds=/tmp/v.sock".parse().unwrap();
        assert_eq!(
            c,
            VsockConfig {
                cid: 3,
                uds: PathBuf::from("/tmp/v.sock")
            }
        );
        let c: VsockConfig = "uds=rel/v.sock,cid=4294967294".parse().unwrap();
        assert_eq!((c.cid, c.uds.to_str().unwrap()), (4294967294, "rel/v.sock"));
        // '=' inside the path is fine: only the first one splits.
        let c: VsockConfig = "cid=7,uds=/tmp/a=b".parse().unwrap();
        assert_eq!(c.uds, PathBuf::from("/tmp/a=b"));
    }

    #[test]
    fn vsock_config_rejects_bad_input_with_a_reason() {
        for (bad, reason) in [
            ("", "not KEY=VALUE"),
            ("cid=3", "uds=PATH is required"),
            ("uds=/tmp/v.sock", "cid=N is required"),
            ("cid=2,uds=/x", "reserved"),
            ("cid=0,uds=/x", "reserved"),
            ("cid=4294967295,uds=/x", "too large"),
            ("cid=-3,uds=/x", "not a number"),
            ("cid=three,uds=/x", "not a number"),
            ("cid=3,uds=", "needs a path"),
            ("cid=3,cid=4,uds=/x", "twice"),
            ("cid=3,uds=/x,uds=/y", "twice"),
            ("cid=3,uds=/x,port=5", "unknown key 'port'"),
            ("cid=3,uds=/x,", "not KEY=VALUE"),
        ] {
            let error = bad.parse::<VsockConfig>().unwrap_err();
            assert!(error.contains(reason), "{bad:?}: {error}");
        }
    }
}
