//! Object-storage backend (work in progress).
