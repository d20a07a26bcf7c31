/*
 * A recording event callback for the end-to-end tests: per request id it
 * keeps the pieces (checking their seq order), the terminal event and how
 * many terminal events arrived, so a test can assert "in order, none twice,
 * none missing, exactly one terminal event".
 */
#ifndef PL_TEST_RECORDER_H
#define PL_TEST_RECORDER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "parley.h"

typedef struct recorder_entry {
    bool found;
    int pieces;           /* TEXT events */
    int seq_errors;       /* pieces whose seq was not the next one */
    int terminals;        /* DONE and ERROR events: must end at 1 */
    parley_event_type_t terminal;
    parley_err_t err;
    char text[512];       /* the pieces joined */
    char done[512];       /* DONE: the content */
    char stop_reason[16];
    char err_msg[512];
    uint64_t output_tokens;
    /* Pieces of other kinds; the seq check counts every kind, as the
     * protocol's one counter does. */
    int thinking_pieces, tool_calls;
    char thinking[512];   /* THINKING pieces joined */
    char signature[64];   /* the thinking block's signature */
    char tools[512];      /* each call "id name input", one per line */
    char text_blocks[64]; /* the block index of each TEXT piece, as digits */
    char stop_sequence[64];
    void *opaque;         /* of the last event */
} recorder_entry;

void recorder_reset(void);
void recorder_on_event(parley_client_t *client, const parley_event_t *ev, void *opaque);
recorder_entry recorder_get(uint64_t id);
size_t recorder_terminals(void);
/* Totals over every request seen. */
size_t recorder_seq_errors(void);
size_t recorder_requests_with_extra_terminals(void);
/* Wait (bounded) until request id has at least n pieces. */
bool recorder_wait_pieces(uint64_t id, int n, int seconds);
/* Wait (bounded) until n terminal events arrived; returns how many did. */
size_t recorder_wait_terminals(size_t n, int seconds);

#endif
