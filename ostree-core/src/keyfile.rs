//! GKeyFile.
