//! TCP_INFO diagnosis. (Issue 5.)
