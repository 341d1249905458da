//! The names a change may create or remove: 1..=255 bytes, no `/` or NUL, not `.` or `..` (the
//! entries every directory keeps for itself).

use crate::NAME_MAX;
use crate::error::{Error, Result};

/// Checks a name to create, remove or rename: [`Error::NameTooLong`] past 255 bytes,
/// [`Error::InvalidName`] for the rest.
pub(crate) fn check_name(name: &[u8]) -> Result<()> {
    if name.len() > NAME_MAX {
        return Err(Error::NameTooLong);
    }
    if name.is_empty() || name == b"." || name == b".." || name.iter().any(|&b| b == b'/' || b == 0)
    {
        return Err(Error::InvalidName);
    }
    Ok(())
}
