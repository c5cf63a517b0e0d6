/* `choria`: dispatches to subcommands and prints help in the style of go-choria. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

#define BROKER_FLAGS                                                                             \
    "      --config=FILE    Choria client configuration file (default: ~/.choriarc, then\n"     \
    "                       /etc/choria/client.conf)\n"                                          \
    "      --server=URL     Broker to connect to, overrides the configuration (nats://host:port)\n" \
    "      --debug          Enable debug logging\n"                                              \
    "  -h, --help           Show this help\n"

static const cli_command commands[] = {
    {"tool event", "View Choria lifecycle events",
     "usage: choria tool event [<flags>]\n"
     "\n"
     "View Choria lifecycle events as they are published, one line each:\n"
     "the local receive time (HH:MM:SS) and the event's description.\n"
     "\n"
     "Flags:\n"
     "      --component=NAME Limit events to a named component\n"
     "      --type=TYPE      Limits the events to a particular type (alive, governor,\n"
     "                       provisioned, shutdown, startup, upgraded)\n" BROKER_FLAGS
     "\n"
     "With --debug the raw message body is printed instead of the formatted line.\n",
     cli_tool_event},
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
