/*
 * The parley.v1 traffic generator (corpus.h).
 *
 * Conversations have a topic (customer support, programming, writing,
 * travel, cooking, billing, science); user turns and assistant replies are
 * put together from that topic's sentence templates, whose {slots} are
 * filled from word lists, with the odd list, code block, quote, accent or
 * emoji that real chat text has. Client messages are encoded by the
 * library's own encoder (src/codec/protocol.c), server messages the way the
 * reference server writes them (compact JSON, keys in its order).
 */
#include "corpus.h"

#include <string.h>

#include "protocol.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* 2026-01-01T00:00:00Z, the snowflake epoch, in Unix ms. */
#define EPOCH_MS 1767225600000LL

/* ---- randomness ------------------------------------------------------------ */

/* splitmix64: tiny, good enough, and identical everywhere. */
static uint64_t rnd(pl_corpus *c)
{
    uint64_t z = (c->rng += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Uniform in [0, n). */
static size_t pick(pl_corpus *c, size_t n)
{
    return (size_t)(rnd(c) % n);
}

/* Uniform in [lo, hi]. */
static uint64_t between(pl_corpus *c, uint64_t lo, uint64_t hi)
{
    return lo + rnd(c) % (hi - lo + 1);
}

/* True with probability pct / 100. */
static int chance(pl_corpus *c, unsigned pct)
{
    return pick(c, 100) < pct;
}

void pl_corpus_init(pl_corpus *c, uint64_t seed)
{
    c->rng = seed;
    c->clock_ms = EPOCH_MS + (int64_t)(rnd(c) % (200ull * 86400 * 1000));
}

/* ---- word lists for the {slots} -------------------------------------------- */

struct slot {
    const char *name;
    const char *const *words;
    size_t n;
};

static const char *const products[] = {
    "wireless headphones", "standing desk", "coffee grinder", "laptop stand",
    "4K monitor", "mechanical keyboard", "air purifier", "robot vacuum",
    "hiking backpack", "espresso machine", "smart thermostat", "yoga mat",
    "electric kettle", "office chair", "USB-C hub", "running shoes",
};
static const char *const langs[] = {
    "C", "Python", "Rust", "Go", "TypeScript", "Java", "C++", "Bash", "SQL",
};
static const char *const errors[] = {
    "segmentation fault (core dumped)", "undefined reference to `pthread_create'",
    "TypeError: 'NoneType' object is not subscriptable",
    "error[E0502]: cannot borrow `v` as mutable because it is also borrowed as immutable",
    "panic: runtime error: index out of range [3] with length 3",
    "ModuleNotFoundError: No module named 'requests'",
    "java.lang.NullPointerException", "ERROR:  relation \"users\" does not exist",
    "double free or corruption (fasttop)", "connection refused on port 5432",
};
static const char *const cities[] = {
    "Lisbon", "Kyoto", "Mexico City", "Edinburgh", "Montréal", "Cape Town",
    "Seoul", "Buenos Aires", "Reykjavík", "Istanbul", "Vienna", "Hanoi",
};
static const char *const dishes[] = {
    "a mushroom risotto", "chicken tikka masala", "a lemon tart", "ramen",
    "shakshuka", "banana bread", "a Caesar salad", "paella", "crème brûlée",
    "vegetable lasagna", "sourdough bread", "pad thai",
};
static const char *const names[] = {
    "Maria", "James", "Aiko", "Olu", "Sofia", "Lukas", "Priya", "Chen",
    "Fatima", "Noah", "Zoë", "Mateo",
};
static const char *const numbers[] = {
    "2", "3", "5", "10", "12", "24", "30", "48", "100", "250", "1,000",
};
static const char *const days[] = {
    "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "the weekend",
    "next week", "tomorrow", "March 3rd", "the 15th",
};
static const char *const things[] = {
    "the function", "the loop", "the query", "the config file", "the test",
    "the build", "the API call", "the cache", "the migration", "the parser",
};
static const char *const topics_sci[] = {
    "photosynthesis", "black holes", "the immune system", "plate tectonics",
    "quantum entanglement", "CRISPR", "climate feedback loops", "entropy",
};

static const struct slot slots[] = {
    { "product", products, N(products) }, { "lang", langs, N(langs) },
    { "error", errors, N(errors) },       { "city", cities, N(cities) },
    { "dish", dishes, N(dishes) },        { "name", names, N(names) },
    { "n", numbers, N(numbers) },         { "day", days, N(days) },
    { "thing", things, N(things) },       { "sci", topics_sci, N(topics_sci) },
};

/* ---- sentence templates, by topic and role ------------------------------------ */

struct topic {
    const char *const *ask;   /* user */
    size_t nask;
    const char *const *say;   /* assistant */
    size_t nsay;
};

static const char *const support_ask[] = {
    "My order for the {product} still hasn't arrived, it's been {n} days.",
    "I received the {product} but it's damaged. Can I get a replacement?",
    "How do I return the {product}? I lost the original box.",
    "The tracking number says delivered but I never got it.",
    "Can I change the shipping address on my order before it ships?",
    "The {product} stopped working after {n} days, is it under warranty?",
    "I was charged twice for the same order, can you check?",
    "Is there a way to speak to a human?",
};
static const char *const support_say[] = {
    "I'm sorry to hear that your {product} hasn't arrived yet.",
    "I've checked your order and it left our warehouse on {day}.",
    "You can start a return from the Orders page; the original box is not required.",
    "A replacement has been requested and should ship within {n} business days.",
    "Your {product} is covered by our 2-year warranty.",
    "I can see the duplicate charge, and I've issued a refund for it.",
    "Refunds usually take 3 to 5 business days to appear on your statement.",
    "If the package doesn't show up by {day}, reply here and I'll escalate it.",
    "Could you confirm the email address on the account so I can look it up?",
    "Is there anything else I can help you with today?",
};
static const char *const code_ask[] = {
    "I'm getting `{error}` in my {lang} program, what does it mean?",
    "How do I read a file line by line in {lang}?",
    "Why is {thing} so slow when the input has {n} thousand rows?",
    "Can you review this {lang} code and tell me what's wrong with {thing}?",
    "What's the difference between a mutex and a semaphore?",
    "How should I structure tests for {thing}?",
    "Explain what this error means: {error}",
    "Is it safe to call this from two threads at once?",
};
static const char *const code_say[] = {
    "That error usually means {thing} is touching memory it doesn't own.",
    "In {lang}, the idiomatic way is to open the file and iterate over it.",
    "The slowdown comes from {thing} doing a full scan on every iteration.",
    "Try moving the allocation out of the loop and reusing the buffer.",
    "A mutex guards one owner at a time; a semaphore counts permits.",
    "Here's a minimal example:\n\n```{lang}\nfor (size_t i = 0; i < n; i++) {\n    total += items[i].price;\n}\n```",
    "Add a test that reproduces the failure first, then fix {thing}.",
    "You can check this by running it under a sanitizer, e.g. `-fsanitize=address`.",
    "The key is that {thing} must not be shared without a lock.",
    "Let me know what the output looks like after that change.",
};
static const char *const write_ask[] = {
    "Can you help me write an email to {name} about the project deadline?",
    "Make this paragraph sound more professional, please.",
    "I need a short bio for a conference, about {n} words.",
    "Can you proofread this: \"Their going to the meeting on {day}.\"",
    "Give me {n} title ideas for a blog post about remote work.",
    "Rewrite this so it's friendlier but still firm.",
};
static const char *const write_say[] = {
    "Here's a draft:\n\nHi {name},\n\nI wanted to give you a quick update on the timeline.",
    "I'd suggest opening with the main point and keeping each paragraph short.",
    "\"Their\" should be \"They're\" (they are).",
    "1. Working From Anywhere\n2. The Quiet Office\n3. Async by Default",
    "Best regards,\n{name}",
    "Would you like a more formal or a more casual version?",
    "I kept your original structure and only tightened the wording.",
};
static const char *const travel_ask[] = {
    "I'm visiting {city} for {n} days, what should I not miss?",
    "What's the best way to get from the airport to the center of {city}?",
    "Is {day} a good time to visit {city}?",
    "Can you suggest a budget for a week in {city}?",
    "Do I need a visa to go to {city}?",
};
static const char *const travel_say[] = {
    "{city} is very walkable, so base yourself near the old town.",
    "The train from the airport takes about {n} minutes and is the cheapest option.",
    "Book the popular museums in advance; lines get long after 10am.",
    "For {n} days, I'd plan one neighbourhood per day.",
    "Visa rules depend on your passport, so check the official site before booking.",
    "Try the local markets for lunch — it's cheaper and often better. 🙂",
};
static const char *const cook_ask[] = {
    "How do I make {dish} for {n} people?",
    "Can I substitute butter with olive oil in {dish}?",
    "My {dish} always comes out dry, what am I doing wrong?",
    "What wine goes with {dish}?",
};
static const char *const cook_say[] = {
    "For {n} people, double the base recipe and use a wider pan.",
    "Yes, use about three quarters of the amount of oil instead of butter.",
    "It's probably overcooked: take it off the heat a few minutes earlier.",
    "- 200 g flour\n- 2 eggs\n- 250 ml milk\n- a pinch of salt",
    "Let it rest for 10 minutes before serving.",
    "A dry white works well with {dish}.",
};
static const char *const billing_ask[] = {
    "How do I upgrade my plan to the team tier?",
    "Why did my invoice go up by {n} euros this month?",
    "Can I get an invoice with my company's VAT number?",
    "How do I cancel my subscription?",
};
static const char *const billing_say[] = {
    "You can upgrade from Settings → Billing → Change plan.",
    "The increase comes from {n} extra seats added on {day}.",
    "I've added the VAT number; the corrected invoice is in your inbox.",
    "You can cancel anytime; your plan stays active until the end of the period.",
    "Prices are shown in € and exclude VAT.",
};
static const char *const sci_ask[] = {
    "Can you explain {sci} like I'm {n}?",
    "What's the current understanding of {sci}?",
    "Why does {sci} matter for everyday life?",
    "Summarize the key ideas behind {sci} in a few sentences.",
};
static const char *const sci_say[] = {
    "In short, {sci} is about how energy and information move through a system.",
    "Scientists are still debating the details, but the core idea is well established.",
    "A good analogy is a city's traffic: many small flows add up to the big picture.",
    "The key experiment was repeated many times with the same result.",
    "If you'd like, I can point you to an introductory book on {sci}.",
};

static const struct topic topics[] = {
    { support_ask, N(support_ask), support_say, N(support_say) },
    { code_ask, N(code_ask), code_say, N(code_say) },
    { write_ask, N(write_ask), write_say, N(write_say) },
    { travel_ask, N(travel_ask), travel_say, N(travel_say) },
    { cook_ask, N(cook_ask), cook_say, N(cook_say) },
    { billing_ask, N(billing_ask), billing_say, N(billing_say) },
    { sci_ask, N(sci_ask), sci_say, N(sci_say) },
};

static const char *const openers[] = {
    "Hi! ", "Hello, ", "Thanks. ", "Quick question: ", "Okay, next thing. ",
    "Sorry, one more: ", "Hey, ", "", "", "", "", "",
};
static const char *const closers[] = {
    " Thanks!", " Thank you.", " Any ideas?", " 🙏", "", "", "", "",
};
static const char *const reply_openers[] = {
    "Sure! ", "Of course. ", "Good question. ", "Happy to help. ",
    "Thanks for the details. ", "", "", "",
};

/*
 * Free sentences from common words, so that not every sentence comes from a
 * template: real chat text repeats far less than templates do.
 */
static const char *const subjects[] = {
    "the team", "my manager", "our customer", "the new version", "this approach",
    "the old system", "everyone", "the report", "my sister", "the landlord",
    "the second option", "the design", "the server", "your account", "the kids",
    "the first draft", "the plan", "our budget", "the documentation", "a friend",
    "the library", "the main road", "the dashboard", "the contract", "my doctor",
    "the recipe", "the schedule", "the battery", "the interview", "the weather",
};
static const char *const verbs[] = {
    "needs", "keeps breaking", "should cover", "already includes", "depends on",
    "might replace", "works better with", "was built for", "usually ignores",
    "could simplify", "has to handle", "slowly improves", "will change",
    "tends to forget", "clearly explains", "barely supports", "quickly fills",
    "never matches", "often delays", "carefully checks", "wants to keep",
    "is waiting for", "recommends", "does not mention", "rarely uses",
};
static const char *const objects[] = {
    "the deadline", "a second opinion", "more memory", "the small details",
    "three more days", "a clear summary", "the original receipt", "every edge case",
    "a quieter room", "the last meeting", "fresh ingredients", "a better name",
    "the monthly report", "two extra people", "a simple example", "the error log",
    "the shipping label", "a bigger screen", "the test results", "an early start",
    "the user feedback", "a shorter route", "the evening train", "a backup plan",
    "the default settings", "a few screenshots", "the price change", "a cold drink",
};
static const char *const modifiers[] = {
    "", "", "", " before the weekend", " without any warning", " most of the time",
    " in the new release", " at least for now", " according to the notes",
    " if nothing else changes", " for some reason", " since last year",
    " after the update", " every other week", " in my experience",
    " as far as I can tell", " when it rains", " by the end of the month",
};

static int free_sentence(pl_corpus *c, pl_buf *s)
{
    const char *subj = subjects[pick(c, N(subjects))];
    size_t mark = s->len;

    if (pl_buf_append_str(s, subj) || pl_buf_append_str(s, " ") ||
        pl_buf_append_str(s, verbs[pick(c, N(verbs))]) ||
        pl_buf_append_str(s, " ") ||
        pl_buf_append_str(s, objects[pick(c, N(objects))]) ||
        pl_buf_append_str(s, modifiers[pick(c, N(modifiers))]) ||
        pl_buf_append_str(s, chance(c, 85) ? "." : "?"))
        return -1;
    if (s->data[mark] >= 'a' && s->data[mark] <= 'z')
        s->data[mark] = (char)(s->data[mark] - 'a' + 'A');
    return 0;
}

/* ---- text ------------------------------------------------------------------- */

static const struct slot *slot_named(const char *name, size_t len)
{
    size_t i;

    for (i = 0; i < N(slots); i++)
        if (strlen(slots[i].name) == len && !memcmp(slots[i].name, name, len))
            return &slots[i];
    return NULL;
}

/* Append tmpl with each {slot} replaced by a random word from its list. */
static int fill(pl_corpus *c, const char *tmpl, pl_buf *s)
{
    const char *p = tmpl;

    while (*p) {
        const char *open = strchr(p, '{'), *close;
        const struct slot *sl;

        if (!open || !(close = strchr(open, '}')) ||
            !(sl = slot_named(open + 1, (size_t)(close - open - 1))))
            return pl_buf_append_str(s, p);
        if (pl_buf_append(s, p, (size_t)(open - p)) ||
            pl_buf_append_str(s, sl->words[pick(c, sl->n)]))
            return -1;
        p = close + 1;
    }
    return 0;
}

/* A question, sometimes with some context before it. */
static int user_turn(pl_corpus *c, const struct topic *t, pl_buf *s)
{
    int rc = pl_buf_append_str(s, openers[pick(c, N(openers))]);

    if (!rc && chance(c, 35))
        rc = free_sentence(c, s) || pl_buf_append_str(s, " ");
    rc = rc || fill(c, t->ask[pick(c, t->nask)], s);
    if (!rc && chance(c, 25))
        rc = pl_buf_append_str(s, " ") || free_sentence(c, s);
    return rc || pl_buf_append_str(s, closers[pick(c, N(closers))]) ? -1 : 0;
}

/* A reply of 1 to 6 sentences, some on lines of their own, from the topic's
 * templates (no template twice) and free sentences. */
static int assistant_turn(pl_corpus *c, const struct topic *t, pl_buf *s)
{
    size_t i, n = (size_t)between(c, 1, 6);
    uint64_t used = 0; /* templates already in this reply, by index */

    if (pl_buf_append_str(s, reply_openers[pick(c, N(reply_openers))]))
        return -1;
    for (i = 0; i < n; i++) {
        const char *sep = i == 0 ? "" : chance(c, 25) ? "\n\n" : " ";
        size_t k = pick(c, t->nsay);
        int rc = pl_buf_append_str(s, sep);

        if (!rc && (used >> k & 1 || chance(c, 40))) {
            rc = free_sentence(c, s);
        } else if (!rc) {
            used |= (uint64_t)1 << k;
            rc = fill(c, t->say[k], s);
        }
        if (rc)
            return -1;
    }
    return 0;
}

/* ---- ids and envelopes -------------------------------------------------------- */

/* A snowflake (41 bits of ms since the epoch, 10 of worker, 12 of sequence)
 * as the client makes them. */
static uint64_t snowflake(pl_corpus *c)
{
    uint64_t ms = (uint64_t)(c->clock_ms - EPOCH_MS);

    c->clock_ms += (int64_t)between(c, 0, 900);
    return ms << 22 | between(c, 0, 1023) << 12 | between(c, 0, 4095);
}

static int session_id(pl_corpus *c, pl_buf *s)
{
    static const char *const prefixes[] = {
        "support-", "chat-", "user:", "ticket.", "conv-", "sess_",
    };
    static const char hex[] = "0123456789abcdef";
    char tail[17];
    size_t i;

    if (pl_buf_append_str(s, prefixes[pick(c, N(prefixes))]))
        return -1;
    if (chance(c, 50))
        return pl_buf_append_u64(s, between(c, 1, 999999));
    for (i = 0; i < 16; i++)
        tail[i] = hex[pick(c, 16)];
    tail[16] = '\0';
    return pl_buf_append_str(s, tail);
}

static int put_lit(pl_buf *b, const char *s)
{
    return pl_buf_append_str(b, s);
}

/* ,"id":"<snowflake>" */
static int put_id(pl_buf *out, uint64_t id)
{
    return put_lit(out, "\"id\":\"") || pl_buf_append_u64(out, id) ||
           put_lit(out, "\"") ? -1 : 0;
}

/* ---- server messages ------------------------------------------------------------- */

/* A streamed piece: a few words of a reply, as models stream them. */
static int gen_text(pl_corpus *c, pl_buf *out)
{
    pl_buf reply = PL_BUF_INIT, sess = PL_BUF_INIT;
    const struct topic *t = &topics[pick(c, N(topics))];
    size_t start, len;
    int rc;

    rc = assistant_turn(c, t, &reply) || session_id(c, &sess);
    if (!rc) {
        /* A piece of 2..48 bytes, cut on a code point boundary. */
        start = pick(c, reply.len);
        while (start && ((unsigned char)reply.data[start] & 0xC0) == 0x80)
            start--;
        len = (size_t)between(c, 2, 48);
        if (start + len > reply.len)
            len = reply.len - start;
        while (start + len < reply.len &&
               ((unsigned char)reply.data[start + len] & 0xC0) == 0x80)
            len++;
        rc = put_lit(out, "{\"type\":\"text\",") || put_id(out, snowflake(c)) ||
             put_lit(out, ",\"session\":") ||
             pl_buf_append_json_str(out, sess.data, sess.len) ||
             put_lit(out, ",\"seq\":") ||
             pl_buf_append_u64(out, between(c, 0, 400)) ||
             put_lit(out, ",\"content\":") ||
             pl_buf_append_json_str(out, reply.data + start, len) ||
             put_lit(out, "}");
    }
    pl_buf_free(&reply);
    pl_buf_free(&sess);
    return rc ? -1 : 0;
}

static int gen_done(pl_corpus *c, pl_buf *out)
{
    static const char *const reasons[] = {
        "end_turn", "end_turn", "end_turn", "end_turn", "max_tokens", "cancelled",
    };
    pl_buf sess = PL_BUF_INIT;
    uint64_t pieces = between(c, 1, 600);
    int rc = session_id(c, &sess) ||
        put_lit(out, "{\"type\":\"done\",") || put_id(out, snowflake(c)) ||
        put_lit(out, ",\"session\":") ||
        pl_buf_append_json_str(out, sess.data, sess.len) ||
        put_lit(out, ",\"stop_reason\":\"") ||
        put_lit(out, reasons[pick(c, N(reasons))]) ||
        put_lit(out, "\",\"seq_end\":") || pl_buf_append_u64(out, pieces) ||
        put_lit(out, ",\"usage\":{\"input_tokens\":") ||
        pl_buf_append_u64(out, between(c, 5, 6000)) ||
        put_lit(out, ",\"output_tokens\":") || pl_buf_append_u64(out, pieces) ||
        put_lit(out, "}}");

    pl_buf_free(&sess);
    return rc ? -1 : 0;
}

static int gen_ack(pl_corpus *c, pl_buf *out)
{
    return put_lit(out, "{\"type\":\"ack\",") || put_id(out, snowflake(c)) ||
           put_lit(out, "}") ? -1 : 0;
}

static int gen_cancel(pl_corpus *c, pl_buf *out)
{
    return put_lit(out, "{\"type\":\"cancel\",") || put_id(out, snowflake(c)) ||
           put_lit(out, "}") ? -1 : 0;
}

static int gen_hello(pl_corpus *c, pl_buf *out)
{
    static const char *const servers[] = {
        "parley-refserver/0.1.0", "parley-gateway/2.3.1", "edge-eu-west/1.9.4",
    };
    static const char *const heartbeats[] = { "15", "30", "30", "60" };

    return put_lit(out, "{\"type\":\"hello\",\"protocol\":\"") ||
           put_lit(out, chance(c, 70) ? "parley.v1.zstd" : "parley.v1") ||
           put_lit(out, "\",\"max_message_bytes\":1048576,\"heartbeat_s\":") ||
           put_lit(out, heartbeats[pick(c, N(heartbeats))]) ||
           put_lit(out, ",\"idempotency_window_s\":600,\"server\":\"") ||
           put_lit(out, servers[pick(c, N(servers))]) || put_lit(out, "\"}")
               ? -1 : 0;
}

static int gen_error(pl_corpus *c, pl_buf *out)
{
    static const char *const errs[][2] = {
        { "rate_limited", "too many requests, slow down" },
        { "overloaded", "the model is overloaded, try again shortly" },
        { "invalid_request", "field \\\"session\\\" must be 1-128 bytes of [A-Za-z0-9._:-]" },
        { "too_large", "message over max_message_bytes" },
        { "internal", "the generation failed" },
        { "resume_failed", "unknown or expired request id" },
    };
    size_t k = pick(c, N(errs));
    int rc = put_lit(out, "{\"type\":\"error\",");

    if (!rc && k != 3)
        rc = put_id(out, snowflake(c)) || put_lit(out, ",");
    rc = rc || put_lit(out, "\"code\":\"") || put_lit(out, errs[k][0]) ||
         put_lit(out, "\",\"content\":\"") || put_lit(out, errs[k][1]) ||
         put_lit(out, "\"");
    if (!rc && k < 2)
        rc = put_lit(out, ",\"retry_after_ms\":") ||
             pl_buf_append_u64(out, between(c, 1, 40) * 100);
    return rc || put_lit(out, "}") ? -1 : 0;
}

/* ---- client messages ------------------------------------------------------------- */

#define MAX_TURNS 64

/* A conversation so far: alternating user/assistant turns. */
struct convo {
    const struct topic *topic;
    pl_buf turn[MAX_TURNS];
    pl_history_turn hist[MAX_TURNS];
    size_t nturns;
    pl_buf content, session;
    const char *model;
    uint32_t max_tokens;
    uint32_t resume_from;
};

static void convo_init(pl_corpus *c, struct convo *v)
{
    static const char *const models[] = {
        NULL, NULL, NULL, "parley-echo-1", "claude-sonnet-4-5", "gpt-4.1-mini",
    };
    static const uint32_t maxes[] = { 0, 0, 0, 256, 1024, 4096 };

    memset(v, 0, sizeof *v);
    v->topic = &topics[pick(c, N(topics))];
    v->model = models[pick(c, N(models))];
    v->max_tokens = maxes[pick(c, N(maxes))];
    v->resume_from = chance(c, 5) ? (uint32_t)between(c, 1, 40) : 0;
}

static void convo_free(struct convo *v)
{
    size_t i;

    for (i = 0; i < MAX_TURNS; i++)
        pl_buf_free(&v->turn[i]);
    pl_buf_free(&v->content);
    pl_buf_free(&v->session);
}

/* Add the next earlier turn (user, assistant, user, ...). */
static int convo_add_turn(pl_corpus *c, struct convo *v)
{
    size_t k = v->nturns;
    pl_buf *b = &v->turn[k];
    int assistant = k % 2 == 1;

    if (k == MAX_TURNS)
        return -1;
    pl_buf_reset(b); /* it may hold a turn that was dropped */
    if ((assistant ? assistant_turn(c, v->topic, b) : user_turn(c, v->topic, b)))
        return -1;
    v->hist[k].assistant = assistant;
    v->nturns++;
    return 0;
}

/* Encode; the turns' pointers are refreshed first (buffers move). A history
 * must end with an assistant turn, so an odd count leaves the last out. */
static int convo_encode(pl_corpus *c, struct convo *v, pl_buf *out)
{
    size_t i, n = v->nturns & ~(size_t)1;
    pl_message_req req;
    size_t mark = out->len;

    for (i = 0; i < n; i++) {
        v->hist[i].content = v->turn[i].data ? v->turn[i].data : "";
        v->hist[i].content_len = v->turn[i].len;
    }
    memset(&req, 0, sizeof req);
    req.id = snowflake(c);
    req.session = v->session.data;
    req.timestamp_ms = c->clock_ms;
    req.content = v->content.data;
    req.content_len = v->content.len;
    req.history = n ? v->hist : NULL;
    req.nhistory = n;
    req.model = v->model;
    req.max_tokens = v->max_tokens;
    if (pl_proto_encode_message(out, &req))
        return -1;
    if (!v->resume_from)
        return 0;
    /* A repeat after a reconnect: the same message with resume_from. */
    {
        pl_buf tmp = PL_BUF_INIT;
        int rc = pl_buf_append(&tmp, out->data + mark, out->len - mark);
        out->len = mark;
        rc = rc || pl_proto_add_resume_from(out, tmp.data, tmp.len,
                                            v->resume_from);
        pl_buf_free(&tmp);
        return rc ? -1 : 0;
    }
}

static int convo_start(pl_corpus *c, struct convo *v)
{
    convo_init(c, v);
    return session_id(c, &v->session) || user_turn(c, v->topic, &v->content)
               ? -1 : 0;
}

static int gen_message(pl_corpus *c, pl_buf *out)
{
    struct convo v;
    size_t turns;
    int rc = convo_start(c, &v);

    /* Most conversations are short; some run long. */
    turns = chance(c, 30) ? 0 : chance(c, 80) ? between(c, 1, 4) * 2
                                              : between(c, 5, 12) * 2;
    while (!rc && v.nturns < turns)
        rc = convo_add_turn(c, &v);
    rc = rc || convo_encode(c, &v, out);
    convo_free(&v);
    return rc ? -1 : 0;
}

/* Shorten b by about `cut` bytes, ending on a code point boundary. */
static void shorten(pl_buf *b, size_t cut)
{
    size_t len = cut < b->len ? b->len - cut : 0;

    while (len && ((unsigned char)b->data[len] & 0xC0) == 0x80)
        len--;
    b->len = len;
    if (b->data)
        b->data[len] = '\0';
}

int pl_corpus_message_sized(pl_corpus *c, size_t lo, size_t hi, pl_buf *out)
{
    struct convo v;
    size_t mark = out->len, target = lo + (hi - lo) / 2;
    int rc = convo_start(c, &v);

    while (!rc) {
        out->len = mark;
        if ((rc = convo_encode(c, &v, out)))
            break;
        size_t len = out->len - mark;
        if (len >= lo && len <= hi)
            break;
        if (len < lo) {
            /* Whole user+assistant pairs, so the history stays valid. */
            rc = convo_add_turn(c, &v) || convo_add_turn(c, &v);
        } else if (v.nturns >= 2) {
            pl_buf *last = &v.turn[v.nturns - 1];
            shorten(last, len - target);
            if (!last->len)
                v.nturns -= 2; /* that pair is gone; its user turn too */
        } else {
            shorten(&v.content, len - target);
        }
    }
    convo_free(&v);
    if (rc)
        out->len = mark;
    return rc ? -1 : 0;
}

/* ---- the mix -------------------------------------------------------------------- */

/*
 * Shares per 100 messages on a busy connection: each reply streams many
 * text pieces between one ack and one done; messages, errors and cancels
 * are rarer, hellos rarest.
 */
static pl_corpus_kind draw_kind(pl_corpus *c)
{
    size_t r = pick(c, 100);

    return r < 55 ? PL_CORPUS_TEXT : r < 70 ? PL_CORPUS_MESSAGE
         : r < 80 ? PL_CORPUS_ACK : r < 90 ? PL_CORPUS_DONE
         : r < 94 ? PL_CORPUS_HELLO : r < 98 ? PL_CORPUS_ERROR
         : PL_CORPUS_CANCEL;
}

int pl_corpus_next(pl_corpus *c, pl_corpus_kind kind, pl_buf *out)
{
    if (kind == PL_CORPUS_MIXED)
        kind = draw_kind(c);
    c->clock_ms += (int64_t)between(c, 0, 2000);
    switch (kind) {
    case PL_CORPUS_MESSAGE: return gen_message(c, out);
    case PL_CORPUS_TEXT: return gen_text(c, out);
    case PL_CORPUS_DONE: return gen_done(c, out);
    case PL_CORPUS_ACK: return gen_ack(c, out);
    case PL_CORPUS_HELLO: return gen_hello(c, out);
    case PL_CORPUS_ERROR: return gen_error(c, out);
    case PL_CORPUS_CANCEL: return gen_cancel(c, out);
    default: return -1;
    }
}
