/*
 * The parley command-line tool.
 *   parley chat [--endpoint URL] [--model M] [--set NAME=VALUE]... [MESSAGE...]
 * holds one conversation (chat.c).
 *   parley race-demo [--threads N] [--increments K] [--sleep-ms M]
 * runs examples/race_demo.c (docs/race-condition.md).
 *   parley bench --endpoint URL --requests R [--concurrency N] [--turns K] ...
 * runs a load against an echo-model server and prints one JSON line (bench.c).
 */
#include <stdio.h>
#include <string.h>

#include "bench.h"
#include "chat.h"
#include "parley.h"
#include "race_demo.h"

static int usage(FILE *out, int status)
{
    fprintf(out,
            "usage: parley chat [--endpoint URL] [--dialect native|anthropic|openai]\n"
            "                   [--session ID] [--model M] [--system TEXT]\n"
            "                   [--temperature T] [--stop SEQ]... [--thinking N]\n"
            "                   [--tools FILE] [--history FILE] [--export FILE]\n"
            "                   [--store redis://HOST:PORT[/DB]]\n"
            "                   [--key-file FILE] [--set NAME=VALUE]...\n"
            "                   [--cacert FILE] [--capath DIR] [--pinnedpubkey PINS]\n"
            "                   [--cert FILE] [--key FILE] [-k|--insecure] [MESSAGE...]\n"
            "       parley race-demo [--threads N] [--increments K] [--sleep-ms M]\n"
            "       parley bench --endpoint URL --requests R [--concurrency N] [--turns K]\n"
            "                    [--duration S] [--dialect D] [--connections C]\n"
            "                    [--set NAME=VALUE]... [TLS options]\n"
            "       parley --version\n"
            "\n"
            "chat   sends each MESSAGE as the next turn of one conversation and\n"
            "       prints each reply on its own line; with no MESSAGE, each line\n"
            "       of standard input is a turn (with a prompt at a terminal). A\n"
            "       failed turn is reported and the next one sent; the exit status\n"
            "       is 0 when every turn got its reply, 1 when any failed, 2 when\n"
            "       the options or the configuration are wrong. --set sets any\n"
            "       property (docs/configuration.md), e.g. --set max.tokens=200.\n"
            "       --tools FILE gives the model tools (a JSON array of {name,\n"
            "       description, input_schema}); a tool call prints as one line of\n"
            "       JSON, and a turn that is a line of JSON blocks, such as\n"
            "       {\"type\":\"tool_result\",\"tool_use_id\":ID,\"content\":TEXT}, is\n"
            "       sent as blocks. Thinking (--thinking TOKENS) goes to stderr.\n"
            "       --history FILE starts from a history that --export FILE wrote\n"
            "       (docs/conversations.md). --store URL --session ID keeps the\n"
            "       conversation in Redis: the next run with the same ID, on any\n"
            "       machine, goes on from it (docs/cluster.md; the password from\n"
            "       $PARLEY_STORE_PASSWORD).\n"
            "race-demo  shows lost updates on a shared counter and three fixes\n"
            "           (atomic, mutex, actor); see docs/race-condition.md.\n"
            "bench  holds N conversations at once against a server answering with\n"
            "       the echo model (parley-refserver), checks every reply and prints\n"
            "       one JSON line of results; `parley bench --help` for the details.\n"
            "\n"
            "The endpoint comes from --endpoint or PARLEY_ENDPOINT: ws:// or wss://\n"
            "for the native protocol, http:// or https:// for the anthropic or\n"
            "openai dialect (--dialect; unset: anthropic for api.anthropic.com,\n"
            "openai for api.openai.com and other http(s) hosts). The API key comes\n"
            "from PARLEY_API_KEY (ANTHROPIC_API_KEY or OPENAI_API_KEY first for\n"
            "those dialects) or --key-file, never from the command line. The\n"
            "vendors' APIs need --model (docs/vendors.md). TLS options take curl's\n"
            "names.\n");
    return status;
}

int chat_usage(FILE *out, int status)
{
    return usage(out, status);
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return usage(stderr, 2);
    if (!strcmp(argv[1], "--version")) {
        printf("parley %s\n", parley_version_str());
        return 0;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "help"))
        return usage(stdout, 0);
    if (!strcmp(argv[1], "chat"))
        return chat_main(argc - 1, argv + 1);
    if (!strcmp(argv[1], "race-demo"))
        return race_demo_main(argc - 1, argv + 1);
    if (!strcmp(argv[1], "bench"))
        return bench_main(argc - 1, argv + 1);
    fprintf(stderr, "parley: unknown command \"%s\"\n", argv[1]);
    return usage(stderr, 2);
}
