/* A store order's memory; see store_order.h. */
#include "store_order.h"

#include <stdlib.h>

void pl_store_order_free(pl_store_order *order)
{
    if (!order)
        return;
    free(order->json);
    free(order);
}
