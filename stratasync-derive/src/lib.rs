//! placeholder
use proc_macro::TokenStream;
/// placeholder
#[proc_macro_derive(SyncModel, attributes(sync))]
pub fn derive_sync_model(_input: TokenStream) -> TokenStream {
    TokenStream::new()
}
