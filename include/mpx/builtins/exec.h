/* mpx/builtins/exec.h — Exec: stream items through an external command.
 *
 * The stage runs `command` with /bin/sh -c in its process, writes part 0
 * of every item to the command's stdin (followed by a newline in line
 * mode) and puts what the command writes on stdout downstream: one item
 * per line (without the newline) or, in chunk mode, items of whatever size
 * the reads return.  At teardown it closes stdin and puts the rest of the
 * output.  If the command exits with a status other than 0, is killed by a
 * signal, or cannot be started, the run fails with a message giving the
 * command, the status or signal, and the last lines it wrote on stderr.
 * The command never outlives the stage, and every process Exec forks (sh,
 * what sh runs, and a guard process between the stage and sh) has been
 * reaped by the time mpx_graph_join returns, whether the stage finishes,
 * fails, or is stopped (mpx_graph_stop, a failure elsewhere).  Only a
 * stage process killed outright (SIGKILL: a timeout) runs nothing more:
 * its guard then kills and reaps the command, and is itself reaped by
 * whichever process adopts it (init, or the nearest subreaper).
 *
 *     MPX_EZ(mpx_read("/etc/passwd"), mpx_exec("cut -d: -f1 | sort", MPX_EXEC_LINES),
 *            mpx_print(NULL))
 */
#ifndef MPX_BUILTINS_EXEC_H
#define MPX_BUILTINS_EXEC_H

#include "../graph.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum mpx_exec_mode {
    MPX_EXEC_LINES,  /* items in and out are lines */
    MPX_EXEC_CHUNKS, /* items in are written as they are; out as read */
} mpx_exec_mode_t;

/* Longest command kept. */
#define MPX_COMMAND_MAX 4096

mpx_node_t *mpx_exec(const char *command, mpx_exec_mode_t mode);

#ifdef __cplusplus
}
#endif
#endif
