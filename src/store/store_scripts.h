/*
 * The Lua scripts the store runs (docs/cluster.md, "Keys and scripts").
 * Every script takes the same five keys of one session, in this order:
 * hist, last, fence, lease, pending; each check and its write happen in one
 * script, so no other client's command falls between them. Every script is
 * idempotent: the store sends an order again after a lost connection.
 */
#ifndef PL_STORE_SCRIPTS_H
#define PL_STORE_SCRIPTS_H

/* ACQUIRE..RELEASE are pl_store_op - 1 (store_order.h). */
typedef enum pl_store_script {
    PL_SCRIPT_ACQUIRE, /* ARGV: owner, lease ms, ttl ms */
    PL_SCRIPT_PENDING, /* ARGV: fence, ttl ms, json */
    PL_SCRIPT_COMMIT,  /* ARGV: fence, ttl ms, json, turn, request id */
    PL_SCRIPT_RELEASE, /* ARGV: fence, ttl ms, owner */
    PL_SCRIPT_RENEW,   /* ARGV: fence, ttl ms, owner, lease ms */
    PL_SCRIPT_COUNT
} pl_store_script;

#define PL_STORE_KEYS 5

/* The keys' suffixes after "<prefix>{<session>}:", in KEYS order. */
extern const char *const pl_store_key_names[PL_STORE_KEYS];

/* The scripts' text (for EVAL and SCRIPT LOAD). */
extern const char *const pl_store_scripts[PL_SCRIPT_COUNT];

#endif
