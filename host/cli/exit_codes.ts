// Exit codes of the `wesp` command, documented in docs/cli.md.
// Commands written elsewhere (up, status, bench, selftest) return these too.

/** Success. */
export const EXIT_OK = 0;
/** Runtime failure: an error while doing the work (I/O, a failed self-test, a crash). */
export const EXIT_FAILURE = 1;
/** Bad usage (unknown command or option, missing argument) or an invalid config. */
export const EXIT_USAGE = 2;
/** Missing privilege: an operation needs a capability (CAP_NET_ADMIN, CAP_NET_RAW) we lack. */
export const EXIT_PERMISSION = 3;
/** No running instance answered on the control socket (`wesp status`). */
export const EXIT_NOT_RUNNING = 4;
