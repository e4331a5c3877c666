//! Local-directory storage backend (work in progress).
