/* `choria`: dispatches to subcommands and prints help in the style of go-choria. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

#define BROKER_FLAGS                                                                               \
    "      --config=FILE    Choria client configuration file (default: ~/.choriarc, then\n"        \
    "                       /etc/choria/client.conf)\n"                                            \
    "      --server=URL     Broker to connect to, overrides the configuration "                    \
    "(nats://host:port)\n"                                                                         \
    "      --debug          Enable debug logging\n"                                                \
    "  -h, --help           Show this help\n"

/* `election view` and its alias `election info` */
#define ELECTION_VIEW_HELP(cmd)                                                                    \
    "usage: choria election " cmd " [<flags>] [REGEX]\n"                                           \
    "\n"                                                                                           \
    "View information about an Election bucket: its settings, replicas and the active\n"           \
    "elections whose name matches REGEX (default: all).\n"                                         \
    "\n"                                                                                           \
    "Flags:\n"                                                                                     \
    "      --bucket=NAME    Election bucket (default: CHORIA_LEADER_ELECTION)\n" BROKER_FLAGS

static char **full_argv; /* for commands that re-execute themselves */

static int server_run(int argc, char **argv)
{
    return cli_server_run(argc, argv, full_argv);
}

static const cli_command commands[] = {
    {"server run", "Runs a Choria server (in provisioning mode until provisioned)",
     "usage: choria server run --config=FILE [<flags>]\n"
     "\n"
     "Runs a Choria server. It starts in provisioning mode when the configuration enables\n"
     "provisioning (plugin.choria.server.provision), or when there is no configuration and a\n"
     "provisioning JWT is present, and then hosts the discovery, rpcutil and choria_provision\n"
     "agents in the 'provisioning' collective until a provisioner configures and restarts it.\n"
     "\n"
     "Flags:\n"
     "      --config=FILE            Server configuration file (required)\n"
     "      --provisioning-jwt=FILE  Provisioning JWT (default: /etc/choria/provisioning.jwt)\n"
     "      --debug                  Enable debug logging\n"
     "  -h, --help                   Show this help\n",
     server_run},
    {"tool event", "View Choria lifecycle events",
     "usage: choria tool event [<flags>]\n"
     "\n"
     "View Choria lifecycle events as they are published, one line each:\n"
     "the local receive time (HH:MM:SS) and the event's description.\n"
     "\n"
     "Flags:\n"
     "      --component=NAME Limit events to a named component\n"
     "      --type=TYPE      Limits the events to a particular type (alive, governor,\n"
     "                       provisioned, shutdown, startup, upgraded)\n" BROKER_FLAGS "\n"
     "With --debug the raw message body is printed instead of the formatted line.\n",
     cli_tool_event},
    {"tool fleet", "Simulates a fleet of provisioning-mode nodes",
     "usage: choria tool fleet --count=N [<flags>]\n"
     "\n"
     "Runs N simulated Choria servers in provisioning mode in one process, built from the\n"
     "same agent code as 'choria server run'. A provisioner can discover, configure and\n"
     "restart them; a simulated restart takes a node out of provisioning mode. Prints\n"
     "progress and, at exit, a summary of what each node saw.\n"
     "\n"
     "Flags:\n"
     "      --count=N              Number of nodes (required)\n"
     "      --prefix=NAME          Identities are <prefix><i>.<domain> (default: n)\n"
     "      --domain=NAME          Domain of the identities (default: fleet.local)\n"
     "      --token=TOKEN          Provisioning token the nodes require (default: any)\n"
     "      --provisioning-jwt=F   JWT the nodes hand out (default: a generated one)\n"
     "      --facts=FILE           Facts of every node (JSON or YAML)\n"
     "      --state-dir=DIR        Where node files go (default: a temporary directory)\n"
     "      --no-sync              Do not fsync the files nodes write (for benchmarks: a\n"
     "                             crash may lose them; a real server always syncs)\n"
     "      --connections=N        NATS connections (default: one per 2000 nodes)\n"
     "      --drop=PCT             Share of requests silently dropped\n"
     "      --delay=PCT            Share of replies delayed by --delay-ms\n"
     "      --delay-ms=MS          How long a delayed reply waits (default: 1000)\n"
     "      --error=PCT            Share of requests answered with an error\n"
     "      --vanish=PCT           Share of nodes that vanish at their first provisioning call\n"
     "      --malformed=PCT        Share of nodes whose rpcutil and choria_provision replies\n"
     "                             are not JSON\n"
     "      --bad-csr=PCT          Share of nodes whose gencsr returns \"not a csr\"\n"
     "      --wrong-csr=PCT        Share of nodes whose gencsr returns a CSR for another name\n"
     "      --jwt-fault=PCT        Share of nodes serving --jwt-fault-file from the jwt action\n"
     "      --jwt-fault-file=F     The JWT faulty nodes serve (e.g. expired or badly signed)\n"
     "      --seed=N               Seed that picks the faulty nodes (default: the clock)\n"
     "      --duration=SECONDS     Stop after this long (default: until SIGINT/SIGTERM)\n"
     "      --exit-when-provisioned  Stop once every node is provisioned, vanished, or faulty\n"
     "                             and has served its fault\n"
     "      --summary-json=FILE    Also write the summary as JSON\n"
     "      --legacy-format        Publish Choria-format lifecycle events, not CloudEvents\n"
     "      --quiet                No progress lines\n"
     "      --tls                  Connect as provisioning-mode nodes do: TLS 1.2 or later,\n"
     "                             no client certificate, the broker's certificate\n"
     "                             not checked\n" BROKER_FLAGS,
     cli_tool_fleet},
    {"jwt provisioning", "Create a signed provisioning JWT for nodes",
     "usage: choria jwt provisioning FILE SIGNING-KEY --token=TOKEN (--urls=URL... | "
     "--srv=DOMAIN)\n"
     "           [<flags>]\n"
     "\n"
     "Writes a provisioning JWT to FILE, signed with SIGNING-KEY: an RSA private key in PEM\n"
     "(RS256) or a file holding a hex ed25519 seed (EdDSA). Nodes that find it in\n"
     "/etc/choria/provisioning.jwt start in provisioning mode; the provisioner verifies it\n"
     "with the matching public key (jwt_verify_cert).\n"
     "\n"
     "Flags:\n"
     "      --token=TOKEN       Provisioning token the nodes require (required)\n"
     "      --urls=URL          Provisioning broker, host:port (repeatable)\n"
     "      --srv=DOMAIN        Find provisioning brokers by SRV records in DOMAIN\n"
     "      --default           Provision nodes by default (chpd)\n"
     "      --[no-]insecure     Unsigned requests while provisioning (chs false; default:\n"
     "                          insecure). Nodes always provision over TLS\n"
     "      --registration=F    File-content registration data file on the node\n"
     "      --facts=FILE        Facts file on the node\n"
     "      --username=USER     NATS user for the provisioning broker\n"
     "      --password=PASS     NATS password for the provisioning broker\n"
     "      --extensions=JSON   Free-form extension data (a JSON object)\n"
     "      --org=ORG           Organization unit (default: choria)\n"
     "      --protocol-v2       Enable protocol version 2\n"
     "      --upgrade           Allow version upgrades during provisioning\n"
     "      --validity=DURATION How long the token is valid (default: 1y)\n"
     "  -h, --help              Show this help\n",
     cli_jwt_provisioning},
    {"election view", "View information about an Election bucket", ELECTION_VIEW_HELP("view"),
     cli_election_view},
    {"election info", "View information about an Election bucket", ELECTION_VIEW_HELP("info"),
     cli_election_view},
    {"election evict", "Evict the current leader from an election",
     "usage: choria election evict [<flags>] NAME\n"
     "\n"
     "Evicts the current leader from election NAME by deleting its key, so the candidates\n"
     "elect a new leader. Asks for confirmation unless --force is given.\n"
     "\n"
     "Flags:\n"
     "      --bucket=NAME    Election bucket (default: CHORIA_LEADER_ELECTION)\n"
     "      --force          Do not ask for confirmation\n" BROKER_FLAGS,
     cli_election_evict},
    {"broker run", "Runs a Choria broker (a supervised nats-server)",
     "usage: choria broker run --config=FILE [--debug]\n"
     "\n"
     "Runs nats-server with Choria's account layout: account 'choria' for the fleet and\n"
     "account 'provisioning' where unprovisioned nodes reach only the provisioning subjects,\n"
     "with the provisioner's user; makes sure the CHORIA_LEADER_ELECTION bucket and the\n"
     "CHORIA_EVENTS stream exist; forwards SIGINT, SIGTERM and SIGHUP and exits with\n"
     "nats-server's status.\n"
     "\n"
     "Configuration keys (key = value):\n"
     "  identity                                          server name\n"
     "  plugin.choria.network.listen_address              default 0.0.0.0\n"
     "  plugin.choria.network.client_port                 default 4222\n"
     "  plugin.choria.stats_port                          monitoring, default 8222\n"
     "  plugin.choria.network.peer_port                   cluster port, 0 = no cluster\n"
     "  plugin.choria.network.peers                       cluster routes, nats://host:port,...\n"
     "  plugin.choria.network.cluster_name                default CHORIA\n"
     "  plugin.choria.network.stream.store                JetStream directory (required)\n"
     "  plugin.choria.network.stream.leader_election_ttl  default 1m\n"
     "  plugin.choria.network.stream.leader_election_replicas  default: number of peers\n"
     "  plugin.choria.network.provisioning.client_password  provisioner password (required)\n"
     "  plugin.choria.network.provisioning.node_user      nodes' user (JWT chusr), default\n"
     "                                                    provisioning\n"
     "  plugin.choria.network.provisioning.node_password  nodes' password (chpwd, required)\n"
     "  plugin.choria.network.choria_user/choria_password optional fleet account user\n"
     "  plugin.choria.network.tls.certificate/key         TLS on the client port (else the\n"
     "                                                    file provider's); no client\n"
     "                                                    certificates are asked for\n"
     "\n"
     "Flags:\n"
     "      --config=FILE    Broker configuration (required)\n"
     "      --debug          Enable debug logging\n"
     "  -h, --help           Show this help\n",
     cli_broker_run},
    {"broker waiting", "List the connections waiting for provisioning",
     "usage: choria broker waiting [--host=HOST] [--port=PORT]\n"
     "\n"
     "Lists the connections in the broker's provisioning account (nodes waiting to be\n"
     "provisioned): name, address, connected since and idle time, read from the broker's\n"
     "monitoring endpoint. The provisioner's own connections are left out.\n"
     "\n"
     "Flags:\n"
     "      --host=HOST      Monitoring host (default: 127.0.0.1)\n"
     "      --port=PORT      Monitoring port, plugin.choria.stats_port (default: 8222)\n"
     "  -h, --help           Show this help\n",
     cli_broker_waiting},
    {"election file", "Maintains a file based on Leader Elections",
     "usage: choria election file [<flags>] FILE [NAME]\n"
     "\n"
     "Campaigns in election NAME (default: file) and, while leader, writes FILE every second\n"
     "with {\"count\":N,\"timestamp\":\"...\"}; removes it when leadership is lost and at\n"
     "exit. With --check: exits 1 when FILE is missing or older than a minute, else 0.\n"
     "\n"
     "Flags:\n"
     "      --bucket=NAME    Election bucket (default: CHORIA_LEADER_ELECTION)\n"
     "      --check          Only check the file\n" BROKER_FLAGS,
     cli_election_file},
    {"election run", "Runs a command under leader election control",
     "usage: choria election run [<flags>] NAME COMMAND... (use -- before a command with flags)\n"
     "\n"
     "Campaigns in election NAME; on first leadership starts COMMAND (a shell-quoted string\n"
     "or several words), waits 1 s and sends it SIGUSR1; on regaining leadership SIGUSR1,\n"
     "on losing it SIGUSR2 (with --terminate: SIGINT, then SIGTERM 1 s later). Exits with\n"
     "the command's exit code.\n"
     "\n"
     "Flags:\n"
     "      --bucket=NAME    Election bucket (default: CHORIA_LEADER_ELECTION)\n"
     "      --terminate      Stop the command when leadership is lost\n" BROKER_FLAGS,
     cli_election_run},
    {"tool emit", "Publish lifecycle events (for demos and tests)",
     "usage: choria tool emit --type=TYPE [<flags>]\n"
     "\n"
     "Publishes lifecycle events on choria.lifecycle.event.<type>.<component>.\n"
     "\n"
     "Flags:\n"
     "      --type=TYPE        Event type: startup, shutdown, provisioned, alive, upgraded,\n"
     "                         governor\n"
     "      --component=NAME   Component (default: server)\n"
     "      --identity=NAME    Identity (default: this host's identity)\n"
     "      --version=VERSION  Version for startup, alive and upgraded (default: " CH_VERSION ")\n"
     "      --new-version=V    New version for upgraded events\n"
     "      --governor=NAME    Governor name for governor events\n"
     "      --governor-event=E enter, exit, timeouts or eviction (default: enter)\n"
     "      --sequence=N       Governor slot sequence (default: 0)\n"
     "      --format=FORMAT    cloudevents (default) or choria\n"
     "      --count=N          How many events to publish (default: 1)\n"
     "      --interval=MS      Pause between events in milliseconds (default: 0)\n" BROKER_FLAGS,
     cli_tool_emit},
};

static const size_t command_count = sizeof(commands) / sizeof(commands[0]);

static void usage(FILE *out)
{
    fprintf(out, "usage: choria [<flags>] <command> [<args> ...]\n"
                 "\n"
                 "Choria Orchestration System (C implementation, provisioning subset)\n"
                 "\n"
                 "Flags:\n"
                 "  -h, --help     Show this help\n"
                 "      --version  Show the application version\n"
                 "\n"
                 "Commands:\n");
    for (size_t i = 0; i < command_count; i++)
        fprintf(out, "  %-16s %s\n", commands[i].path, commands[i].summary);
    fprintf(out, "\nRun 'choria <command> --help' for a command's flags.\n");
}

/* Number of leading argv words that spell path ("tool event" = 2), or 0. */
static int match_path(const char *path, int argc, char **argv)
{
    int words = 0;
    const char *p = path;
    while (*p != '\0') {
        size_t n = strcspn(p, " ");
        if (words >= argc || strlen(argv[words]) != n || strncmp(argv[words], p, n) != 0)
            return 0;
        words++;
        p += n;
        while (*p == ' ')
            p++;
    }
    return words;
}

/* `choria tool --help`: the commands under a prefix. */
static bool group_help(const char *word)
{
    bool any = false;
    for (size_t i = 0; i < command_count; i++) {
        size_t n = strlen(word);
        if (strncmp(commands[i].path, word, n) == 0 && commands[i].path[n] == ' ') {
            if (!any)
                printf("usage: choria %s <command> [<args> ...]\n\nCommands:\n", word);
            printf("  %-16s %s\n", commands[i].path, commands[i].summary);
            any = true;
        }
    }
    return any;
}

static bool wants_help(int argc, char **argv)
{
    for (int i = 0; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
            return true;
    return false;
}

int main(int argc, char **argv)
{
    full_argv = argv;
    if (argc < 2) {
        usage(stderr);
        return 1;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("%s\n", CH_VERSION);
        return 0;
    }
    for (size_t i = 0; i < command_count; i++) {
        int words = match_path(commands[i].path, argc - 1, argv + 1);
        if (words == 0)
            continue;
        int sub_argc = argc - words;
        char **sub_argv = argv + words;
        if (wants_help(sub_argc, sub_argv)) {
            fputs(commands[i].help, stdout);
            return 0;
        }
        return commands[i].run(sub_argc, sub_argv);
    }
    if (wants_help(argc - 1, argv + 1) && group_help(argv[1]))
        return 0;
    if (group_help(argv[1])) {
        fprintf(stderr, "choria: '%s' needs a subcommand\n", argv[1]);
        return 1;
    }
    fprintf(stderr, "choria: unknown command '%s', try 'choria --help'\n", argv[1]);
    return 1;
}
