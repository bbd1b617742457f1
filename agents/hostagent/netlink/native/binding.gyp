{
  "targets": [
    {
      "target_name": "lvsfleet_netlink_dump",
      "sources": ["dump.c"],
      "cflags": ["-O2", "-Wall", "-Wextra", "-std=gnu11"]
    }
  ]
}
