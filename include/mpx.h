/* mpx.h — dataflow pipelines as a graph of forked processes joined by
 * ZeroMQ sockets.  Include this one header.
 *
 *   mpx/stage.h     a stage definition, what a stage may do, items, meta
 *   mpx/graph.h     building a graph (MPX_EZ, MPX_S/P/B, mpx_as/mpx_by) and
 *                   running it (start, next, join, stop, collect)
 *   mpx/monitor.h   figures while it runs, progress, pictures of the graph
 *   mpx/shared.h    memory every stage process sees: arrays, mapped files
 *   mpx/error.h     status codes
 *   mpx/builtins/   ready-made stages
 *
 * For mpyx's look (EZ, S, P, B, As, By) include <mpx/short.h> as well.
 */
#ifndef MPX_H
#define MPX_H

#define MPX_VERSION_MAJOR 0
#define MPX_VERSION_MINOR 1
#define MPX_VERSION_PATCH 0

#include "mpx/error.h"
#include "mpx/stage.h"
#include "mpx/graph.h"
#include "mpx/wiring.h"
#include "mpx/monitor.h"
#include "mpx/shared.h"
#include "mpx/imap.h"
#include "mpx/builtins/batch.h"
#include "mpx/builtins/exec.h"
#include "mpx/builtins/fn.h"
#include "mpx/builtins/io.h"
#include "mpx/builtins/map.h"
#include "mpx/builtins/print.h"
#include "mpx/builtins/reduce.h"
#include "mpx/builtins/seq.h"
#include "mpx/builtins/sources.h"
#include "mpx/builtins/stamp.h"
#include "mpx/builtins/zip.h"

#endif
