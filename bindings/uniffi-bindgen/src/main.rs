//! The bindings generator, pinned to the workspace's uniffi so the generated code always
//! matches the scaffolding compiled into braid-ffi.

fn main() {
    uniffi::uniffi_bindgen_main()
}
