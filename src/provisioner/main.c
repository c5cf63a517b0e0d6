/* choria-provisioner: entry point. The daemon itself arrives with issue #4; until then this
 * binary answers --help and --version and refuses `run` with a clear message. */
#include <stdio.h>
#include <string.h>

static void usage(FILE *out)
{
    fprintf(out, "usage: choria-provisioner [--help] [--version] <command> [<args> ...]\n"
                 "\n"
                 "Choria zero-touch provisioner\n"
                 "\n"
                 "Commands:\n"
                 "  run --config FILE [--choria-config FILE] [--pid FILE] [--debug]\n"
                 "      Runs the provisioner (not implemented in this build yet)\n");
}

int main(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 1 : 0;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("%s\n", CH_VERSION);
        return 0;
    }
    if (strcmp(argv[1], "run") == 0) {
        fprintf(stderr, "choria-provisioner: run is not implemented in this build yet\n");
        return 1;
    }
    fprintf(stderr, "choria-provisioner: unknown command '%s', try --help\n", argv[1]);
    return 1;
}
