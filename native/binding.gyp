# The wesp_io addon (Linux only). Lives in native/ rather than the repo root
# because node-gyp's "rebuild" starts by deleting ./build, which at the root
# would take the WASM core (build/wesp.wasm) with it. Build with
#   npm run build:native      (= node-gyp rebuild -C native)
# -> native/build/Release/wesp_io.node
{
  "targets": [
    {
      "target_name": "wesp_io",
      "sources": ["wesp_io.c", "tun_linux.c", "sock_linux.c", "poll_linux.c", "gso_linux.c", "tun_offload_linux.c", "udp_coalesce_linux.c", "udp_offload_linux.c", "filter_linux.c", "mem_linux.c", "tun_uring_linux.c"],
      "cflags": ["-std=gnu11", "-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      "defines": ["NAPI_VERSION=8"]
    }
  ]
}
