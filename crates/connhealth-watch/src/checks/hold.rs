//! The `hold` check. (Being written.)
