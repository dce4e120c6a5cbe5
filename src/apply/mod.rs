//! The only code that touches the kernel.

pub mod nft;
