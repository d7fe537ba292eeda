// The page's one websocket to /ws. It reconnects by itself with jittered exponential backoff and
// then resubscribes to every unfinished job: the server answers each subscription with a snapshot,
// so whatever happened while the socket was down is recovered. Where sign-in is on, each connection
// opens with a fresh single-use ticket.
import { socketTicket } from './session.js';

const RECONNECT_MIN_MS = 500;
const RECONNECT_MAX_MS = 10_000;
// A socket that closes sooner than this after opening did not really recover: keep backing off.
const STABLE_MS = 5_000;

export class JobSocket {
  /**
   * `unfinished()` names the jobs to resubscribe to; `onMessage(message)` gets every parsed
   * server message; `onState(state, title)` hears 'connecting', 'live' or 'reconnecting'.
   */
  constructor({ unfinished, onMessage, onState }) {
    this.unfinished = unfinished;
    this.onMessage = onMessage;
    this.onState = onState;
    this.ws = null;
    this.openedAt = 0;
    this.attempt = 0;
    this.timer = null;
    this.connecting = false;
    // Coming back online is a better moment to retry than the backoff's next tick.
    window.addEventListener('online', () => {
      if (!this.ws) {
        this.attempt = 0;
        this.connect();
      }
    });
  }

  async connect() {
    clearTimeout(this.timer);
    this.timer = null;
    // Fetching a ticket takes a moment, in which nothing else may start a second socket.
    if (this.connecting) return;
    this.connecting = true;
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const ticket = await socketTicket();
    this.connecting = false;
    const query = ticket ? `?ticket=${encodeURIComponent(ticket)}` : '';
    const ws = new WebSocket(`${scheme}//${location.host}/ws${query}`);
    this.ws = ws;
    this.onState(this.attempt ? 'reconnecting' : 'connecting', 'Connecting for live updates');
    ws.addEventListener('open', () => {
      this.openedAt = Date.now();
      this.onState('live', 'Live updates from the server');
      const ids = this.unfinished();
      if (ids.length) this.send({ subscribe: ids });
    });
    ws.addEventListener('message', (event) => {
      let message = null;
      try {
        message = JSON.parse(event.data);
      } catch {
        return;
      }
      if (message && typeof message === 'object') this.onMessage(message);
    });
    // Any close, the server's 1001 on shutdown included, means: come back later.
    ws.addEventListener('close', () => {
      if (this.ws !== ws) return;
      this.ws = null;
      if (this.openedAt && Date.now() - this.openedAt >= STABLE_MS) this.attempt = 0;
      this.openedAt = 0;
      this.scheduleReconnect();
    });
  }

  scheduleReconnect() {
    const ceiling = Math.min(RECONNECT_MAX_MS, RECONNECT_MIN_MS * 2 ** this.attempt);
    // Between half and all of the ceiling, so many pages do not all come back in step.
    const delay = ceiling / 2 + Math.random() * (ceiling / 2);
    this.attempt += 1;
    this.onState('reconnecting', `Connection lost; trying again in ${Math.ceil(delay / 1000)} s`);
    this.timer = setTimeout(() => this.connect(), delay);
  }

  /** While the socket is down this does nothing: its next open subscribes to what is unfinished. */
  subscribe(ids) {
    this.send({ subscribe: ids });
  }

  unsubscribe(ids) {
    this.send({ unsubscribe: ids });
  }

  send(message) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(message));
  }
}
