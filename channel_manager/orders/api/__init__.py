"""The partner API of orders: createOrder, getOrder, findOrders, replaceOrder, confirmOrder,
deleteOrder (views parse, authorize, call one service, render)."""
