//! An async connection pool that never hands out a connection its peer has closed. (Issue 4.)
