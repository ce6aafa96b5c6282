//! The Swift generator (sources, C header and module map for the XCFramework), pinned to
//! the workspace's uniffi like `uniffi-bindgen`.

fn main() {
    uniffi::uniffi_bindgen_swift()
}
