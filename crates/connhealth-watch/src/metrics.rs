//! `/metrics`. (Being written.)
