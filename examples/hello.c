#include <parley.h>
#include <stdatomic.h>
#include <stdio.h>

static atomic_int failures;                      /* turns that ended in an error */

static void on_event(parley_client_t *c, const parley_event_t *ev, void *opaque)
{
    size_t len;
    const char *text = parley_event_content(ev, &len);
    if (parley_event_type(ev) == PARLEY_EVENT_TEXT)
        fwrite(text, 1, len, stdout);            /* a streamed piece */
    else if (parley_event_type(ev) == PARLEY_EVENT_DONE)
        putchar('\n');                           /* the reply is complete */
    else {
        fprintf(stderr, "error: %s\n", text);    /* says what went wrong */
        failures++;
    }
    (void)c, (void)opaque;
}

int main(void)
{
    parley_conf_t *conf = parley_conf_new(); /* endpoint: $PARLEY_ENDPOINT, key: $PARLEY_API_KEY */
    parley_conf_set_event_cb(conf, on_event, NULL);
    char err[256];
    parley_client_t *client = parley_client_new(conf, err, sizeof(err));
    if (!client) { fprintf(stderr, "%s\n", err); return 1; }
    parley_start(client);
    parley_session_t *s = parley_session_open(client, "support-42", NULL, 0);
    parley_send(s, "hello", NULL);               /* returns at once */
    parley_send(s, "and again", NULL);           /* waits for the first turn */
    parley_flush(client, 10000);
    parley_client_destroy(client);               /* ends what is left, with errors */
    return failures ? 1 : 0;
}
