/* The `choria` command: a table of subcommands and what they share. */
#ifndef CHORIA_CLI_H
#define CHORIA_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "choria/common.h"
#include "choria/conn.h"

typedef struct {
    const char *path;                  /* "tool event" */
    const char *summary;               /* one line for the command list */
    const char *help;                  /* full help: usage line, description, flags */
    int (*run)(int argc, char **argv); /* argv[0] is the last word of path */
} cli_command;

/* Commands, defined in their own files. */
int cli_tool_event(int argc, char **argv);
int cli_tool_emit(int argc, char **argv);
int cli_tool_fleet(int argc, char **argv);
int cli_jwt_provisioning(int argc, char **argv);
int cli_election_view(int argc, char **argv);
int cli_election_evict(int argc, char **argv);
int cli_election_file(int argc, char **argv);
int cli_election_run(int argc, char **argv);
int cli_broker_run(int argc, char **argv);
int cli_broker_waiting(int argc, char **argv);
int cli_server_run(int argc, char **argv, char **full_argv);

/* Options every command that talks to a broker takes. */
typedef struct {
    const char *config_file; /* --config; NULL means the default client config search */
    const char *server;      /* --server; overrides the config's brokers */
    bool debug;
} cli_broker_opts;

/* getopt_long codes of the shared broker flags --config, --server and --debug. */
#define CLI_OPT_CONFIG 'C'
#define CLI_OPT_SERVER 's'
#define CLI_OPT_DEBUG 'd'

/* Applies one of the shared broker flags; false when c is not one of them. */
bool cli_broker_option(int c, const char *arg, cli_broker_opts *o);

/* One long flag of a command, stored into its options struct. */
typedef enum {
    CLI_FLAG_STRING, /* const char *, borrowed from argv */
    CLI_FLAG_BOOL,   /* bool, set to true; the flag takes no value */
    CLI_FLAG_INT,    /* int in [min, max] */
    CLI_FLAG_INT64,  /* int64_t in [min, max], times scale (e.g. seconds to ms) */
    CLI_FLAG_PCT,    /* double in [0, 100] */
} cli_flag_kind;

typedef struct {
    const char *name; /* without the dashes */
    cli_flag_kind kind;
    size_t offset; /* of the field in the options struct */
    int64_t min, max;
    int64_t scale; /* CLI_FLAG_INT64 only; 0 = 1 */
} cli_flag;

/* Parses argv by flags into opts, and the shared --config/--server/--debug into broker when it
 * is not NULL. A bad value or an unknown flag prints one line naming command ("tool fleet")
 * and gives -1; otherwise the index of the first argument that is not a flag. */
int cli_flags_parse(const char *command, const cli_flag *flags, size_t n, void *opts,
                    cli_broker_opts *broker, int argc, char **argv);

/* Resolved settings of a client command: how to reach the brokers (conn.name is the
 * identity), the identity itself and the lifecycle event format. */
typedef struct {
    ch_conn_settings conn;
    char identity[256];
    bool legacy_lifecycle_format;
} cli_client;

/* Loads the client config (or the default one) and applies --server. Prints a clear
 * error on stderr and returns non-OK when it cannot. */
ch_status cli_client_load(const cli_broker_opts *o, cli_client *client);
void cli_client_free(cli_client *client);

/* Installs SIGINT/SIGTERM handlers that set a flag read by cli_should_stop(). */
void cli_install_stop_signals(void);
bool cli_should_stop(void);

#endif
