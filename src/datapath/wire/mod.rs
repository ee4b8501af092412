//! Wire views over frame bytes (work in progress).
