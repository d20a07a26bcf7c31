/*
 * The store's Lua scripts; see store_scripts.h for their arguments.
 * Each answers an array whose first element is the status: "OK", "OWNED",
 * "FENCED" or "CONFLICT". The idle time-to-live (ttl ms, 0: none) applies to
 * every key but the lease, which keeps its own, shorter expiry.
 */
#include "store_scripts.h"

const char *const pl_store_key_names[PL_STORE_KEYS] = {"hist", "last", "fence", "lease",
                                                       "pending"};

/* Refresh the idle time-to-live of the session's keys but the lease. */
#define KEEP                                                                  \
    "local function keep(ttl)\n"                                              \
    "  if ttl > 0 then\n"                                                     \
    "    for _, i in ipairs({1, 2, 3, 5}) do redis.call('PEXPIRE', KEYS[i], ttl) end\n" \
    "  end\n"                                                                 \
    "end\n"

/* The writer's fence (ARGV[1]) must be the session's latest. */
#define FENCE_CHECK \
    "if redis.call('GET', KEYS[3]) ~= ARGV[1] then return {'FENCED'} end\n"

const char *const pl_store_scripts[PL_SCRIPT_COUNT] = {
    /* ACQUIRE: free, expired, or already this owner's (an ACQUIRE sent
     * again after a lost reply): take the next fence; else OWNED with the
     * other lease's time left and its holder. */
    [PL_SCRIPT_ACQUIRE] = KEEP
    "local lease = redis.call('GET', KEYS[4])\n"
    "local mine = ARGV[1] .. ' '\n"
    "if lease and string.sub(lease, 1, #mine) ~= mine then\n"
    "  return {'OWNED', redis.call('PTTL', KEYS[4]), lease}\n"
    "end\n"
    "local fence = redis.call('INCR', KEYS[3])\n"
    "redis.call('SET', KEYS[4], mine .. fence, 'PX', ARGV[2])\n"
    "keep(tonumber(ARGV[3]))\n"
    "return {'OK', fence, redis.call('LRANGE', KEYS[1], 0, -1), redis.call('GET', KEYS[5])}\n",

    /* PENDING: the turn in flight, replacing any; empty: none (the turn
     * failed or was cancelled, and no later owner must send it again). */
    [PL_SCRIPT_PENDING] = KEEP FENCE_CHECK
    "if ARGV[3] == '' then redis.call('DEL', KEYS[5]) else redis.call('SET', KEYS[5], ARGV[3]) end\n"
    "keep(tonumber(ARGV[2]))\n"
    "return {'OK'}\n",

    /* COMMIT of turn t: appended when the list holds t turns; already done
     * when it holds t + 1 and the last request id is this one (a commit
     * sent again); anything else is a conflict, with the list's length. */
    [PL_SCRIPT_COMMIT] = KEEP FENCE_CHECK
    "local n = redis.call('LLEN', KEYS[1])\n"
    "local turn = tonumber(ARGV[4])\n"
    "if n == turn then\n"
    "  redis.call('RPUSH', KEYS[1], ARGV[3])\n"
    "  redis.call('SET', KEYS[2], ARGV[5])\n"
    "  redis.call('DEL', KEYS[5])\n"
    "  keep(tonumber(ARGV[2]))\n"
    "  return {'OK'}\n"
    "end\n"
    "if n == turn + 1 and redis.call('GET', KEYS[2]) == ARGV[5] then return {'OK'} end\n"
    "return {'CONFLICT', n}\n",

    /* RELEASE: the lease goes only when it is still this owner's. */
    [PL_SCRIPT_RELEASE] = KEEP FENCE_CHECK
    "if redis.call('GET', KEYS[4]) == ARGV[3] .. ' ' .. ARGV[1] then\n"
    "  redis.call('DEL', KEYS[4])\n"
    "end\n"
    "return {'OK'}\n",

    /* RENEW: this owner's lease runs lease ms again; a lease that expired
     * while nobody took the session (the fence is still this owner's) is
     * set again; a newer owner's is never touched. */
    [PL_SCRIPT_RENEW] = KEEP
    "local held = ARGV[3] .. ' ' .. ARGV[1]\n"
    "local lease = redis.call('GET', KEYS[4])\n"
    "if lease ~= held and (lease or redis.call('GET', KEYS[3]) ~= ARGV[1]) then\n"
    "  return {'FENCED'}\n"
    "end\n"
    "redis.call('SET', KEYS[4], held, 'PX', ARGV[4])\n"
    "keep(tonumber(ARGV[2]))\n"
    "return {'OK'}\n",
};
