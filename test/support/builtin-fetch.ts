/**
 * Node's global fetch types `RequestInit.dispatcher` with the undici-types of @types/node, not with
 * the undici we depend on. At run time any object with `dispatch()` is accepted, which is what the
 * platform and interop tests check; this gives them a `RequestInit` that carries one.
 */
export function withDispatcher(init: RequestInit, dispatcher: object): RequestInit {
  return Object.assign({}, init, { dispatcher });
}
