//! TCP_INFO diagnosis: [`inspect`](crate::inspect). (Issue 5.)
