//! Compiles the vendored Envoy ext_authz protos in `proto/` into a FileDescriptorSet for gRPC
//! server reflection, with `protox` (pure Rust: no `protoc` needed on the build machine).

use std::{env, fs, path::PathBuf};

fn main() {
    println!("cargo:rerun-if-changed=proto");
    let fds = protox::compile(["envoy/service/auth/v3/external_auth.proto"], ["proto"])
        .expect("proto/ must hold external_auth.proto and everything it imports");
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    fs::write(
        out.join("ext_authz_descriptor.bin"),
        prost::Message::encode_to_vec(&fds),
    )
    .expect("write descriptor set to OUT_DIR");
}
