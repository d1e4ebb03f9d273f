// A request's URL and query, parsed once: the entry, the route, auth (`?token=`) and the error
// path each read them, and on the connect path each parse is a measurable part of what a socket
// costs the Worker (the runtime builds a new URLSearchParams on every `searchParams` read).
const urls = new WeakMap<Request, URL>();
const queries = new WeakMap<Request, URLSearchParams>();

export function urlOf(request: Request): URL {
  let url = urls.get(request);
  if (url === undefined) urls.set(request, (url = new URL(request.url)));
  return url;
}

export function queryOf(request: Request): URLSearchParams {
  let query = queries.get(request);
  if (query === undefined) queries.set(request, (query = urlOf(request).searchParams));
  return query;
}
