"""HTTP (``POST``/``GET /graphql``, GraphiQL) and WebSocket transports."""
