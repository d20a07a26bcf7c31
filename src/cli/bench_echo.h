/*
 * The turns a load run sends and the replies it expects back from the
 * reference server's model, parley-echo-1 (tests/server/echo_model.h): the
 * reply to a conversation's Nth user turn with text C is "[turn N] C",
 * whatever the transport, streamed in pieces that join to exactly that.
 */
#ifndef PARLEY_BENCH_ECHO_H
#define PARLEY_BENCH_ECHO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BENCH_MESSAGE_MAX 96
#define BENCH_REPLY_MAX (BENCH_MESSAGE_MAX + 32) /* "[turn N] " + the message */

/* The text of turn `turn` (from 1) of conversation `conversation`: unique
 * in the run, so that a reply routed to the wrong conversation shows. */
void bench_echo_message(char *buf, size_t size, uint64_t conversation, unsigned long turn);

/* A reply being checked as it streams in. No allocation. */
typedef struct bench_expect {
    char text[BENCH_REPLY_MAX]; /* the reply expected */
    size_t len;
    size_t seen;    /* bytes of pieces received so far */
    bool pieces_ok; /* each piece matched the text where it belongs */
} bench_expect;

/* Expect the reply to `message` sent as the conversation's turn `turn`. */
void bench_expect_reply(bench_expect *e, unsigned long turn, const char *message);

/* One streamed piece, in order. */
void bench_expect_piece(bench_expect *e, const char *piece, size_t len);

/* At the end of the reply: whether the pieces made exactly the expected
 * reply and, when whole is not NULL, whether the whole reply (as the
 * client assembled it) is that reply too. */
bool bench_expect_met(const bench_expect *e, const char *whole, size_t whole_len);

#endif
