/**
 * The webview side of host messaging, injectable for tests: in VS Code `acquireVsCodeApi()`; in a
 * standalone report a no-op; in tests whatever `window.__headlensTransport` provides.
 */
import type { HostToWebview, WebviewToHost } from '../../engine/protocol';

export interface Transport {
  post(msg: WebviewToHost): void;
  getState<T>(): T | undefined;
  setState<T>(s: T): void;
}

interface VsCodeApi {
  postMessage(m: unknown): void;
  getState(): unknown;
  setState(s: unknown): void;
}
declare global {
  interface Window {
    acquireVsCodeApi?: () => VsCodeApi;
    __headlensTransport?: Transport;
  }
}

export function getTransport(): Transport {
  if (window.__headlensTransport) return window.__headlensTransport;
  if (typeof window.acquireVsCodeApi === 'function') {
    const api = window.acquireVsCodeApi();
    return { post: (m) => api.postMessage(m), getState: <T>() => api.getState() as T | undefined, setState: (s) => api.setState(s) };
  }
  let state: unknown;
  return { post: () => {}, getState: <T>() => state as T | undefined, setState: (s) => (state = s) };
}

export function onHostMessage(fn: (m: HostToWebview) => void): void {
  window.addEventListener('message', (ev: MessageEvent) => {
    const m = ev.data as HostToWebview;
    if (m && typeof m === 'object' && typeof (m as { type?: unknown }).type === 'string') fn(m);
  });
}
