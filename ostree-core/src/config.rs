//! The repository `config` key file: the pieces every backend and the repo logic read.

use crate::keyfile::KeyFile;
use crate::store::RepoMode;
use crate::{Error, Result};

/// The parsed `config` of a repository.
#[derive(Clone, Debug)]
pub struct RepoConfig {
    /// The key file, kept whole so unknown keys survive rewrites.
    pub keyfile: KeyFile,
}

impl RepoConfig {
    /// The initial config `ostree init` writes for a mode.
    pub fn initial(mode: RepoMode) -> Self {
        let mut kf = KeyFile::new();
        kf.set("core", "repo_version", "1");
        kf.set("core", "mode", mode.config_name());
        RepoConfig { keyfile: kf }
    }

    /// Parse config text and validate `repo_version` and `mode`.
    pub fn parse(text: &[u8]) -> Result<Self> {
        let text = std::str::from_utf8(text)
            .map_err(|_| Error::invalid("Repository config is not valid UTF-8"))?;
        let keyfile = KeyFile::parse(text)?;
        let cfg = RepoConfig { keyfile };
        match cfg.keyfile.get("core", "repo_version") {
            Some("1") => {}
            Some(v) => return Err(Error::invalid(format!("Invalid repository version '{v}'"))),
            None => {
                return Err(Error::invalid(
                    "Key file does not have key “repo_version” in group “core”",
                ));
            }
        }
        cfg.mode()?;
        Ok(cfg)
    }

    /// `core.mode` (defaults to `bare` as ostree does when absent).
    pub fn mode(&self) -> Result<RepoMode> {
        match self.keyfile.get_string("core", "mode") {
            Some(m) => m.parse(),
            None => Ok(RepoMode::Bare),
        }
    }

    /// A boolean from `core` with a default.
    pub fn core_bool(&self, key: &str, default: bool) -> Result<bool> {
        Ok(self.keyfile.get_bool("core", key)?.unwrap_or(default))
    }

    /// Serialize.
    pub fn to_text(&self) -> String {
        self.keyfile.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initial_config_text() {
        assert_eq!(
            RepoConfig::initial(RepoMode::Archive).to_text(),
            "[core]\nrepo_version=1\nmode=archive-z2\n"
        );
        let c = RepoConfig::parse(b"[core]\nrepo_version=1\nmode=bare-user\n").unwrap();
        assert_eq!(c.mode().unwrap(), RepoMode::BareUser);
        assert!(RepoConfig::parse(b"[core]\nrepo_version=2\n").is_err());
        assert!(RepoConfig::parse(b"[core]\nrepo_version=1\nmode=weird\n").is_err());
    }
}
