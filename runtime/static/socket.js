/**
 * Opens the page's WebSocket (docs/protocol.md) before anything else runs.
 *
 * page.js imports this module ahead of widgets.js, and modules run in import order, so
 * the server starts running the notebook while the browser is still evaluating the
 * widget bundle. Frames that arrive before page.js takes over wait in `early`.
 */
// A staged app's page names its own socket (which stage it shows) in a meta tag.
const path = document.querySelector('meta[name="nbf-socket"]')?.content || '/api/v1/ws';
const url = new URL(path, location.href);
url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
export const socket = new WebSocket(url);
socket.binaryType = 'arraybuffer';

export const early = [];
socket.onmessage = (event) => early.push(event.data);
