// The console's live charts: inline SVG drawn by the page's own code. The CSP allows no library,
// no remote origin and no style attribute, so only presentation attributes and the page's
// hashed stylesheet shape it. Labels live in the HTML around the SVG: text in a stretched
// viewBox would be distorted.
export const WINDOW_MS = 3 * 60_000;
/** The span shown grows from this to WINDOW_MS as samples come, so a fresh chart is not a sliver at its right edge. */
const MIN_SPAN_MS = 30_000;

export interface Point {
  t: number;
  v: number;
}

const NS = "http://www.w3.org/2000/svg";
const W = 300;
const H = 80;
/** Room above the top value, so a line at the top is not cut by the edge. */
const PAD = 4;

/** The time a chart spans: since its first sample, within MIN_SPAN_MS and WINDOW_MS. */
export const spanOf = (since: number, now: number) => Math.min(WINDOW_MS, Math.max(MIN_SPAN_MS, now - since));

/** "30 s" or "3 min": the axis says how far back the chart starts. */
export const ago = (ms: number) => (ms < 90_000 ? `${Math.round(ms / 1000)} s` : `${Math.round(ms / 60_000)} min`);

/** The smallest of 1, 2, 5, 10, 20, 50… at or above `v`: a round top for the scale. */
export function roundUp(v: number): number {
  let step = 1;
  while (step * 5 < v) step *= 10;
  return [1, 2, 5, 10].map((k) => k * step).find((top) => top >= v) ?? 10 * step;
}

function el(name: string, attrs: Record<string, string>): SVGElement {
  const e = document.createElementNS(NS, name);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  return e;
}

/**
 * Draws the points of the `span` before `now` as a line over a shaded area, scaled to a round
 * top (answered, for the page's axis label). `label` names the current figures.
 */
export function draw(svg: SVGSVGElement, points: Point[], now: number, span: number, label: string): number {
  const shown = points.filter((p) => p.t >= now - span);
  const top = roundUp(Math.max(1, ...shown.map((p) => p.v)));
  const xy = shown.map((p) => `${(((p.t - now + span) / span) * W).toFixed(1)},${(H - (p.v / top) * (H - PAD)).toFixed(1)}`);
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  svg.setAttribute("preserveAspectRatio", "none");
  svg.setAttribute("aria-label", label);
  const title = el("title", {});
  title.textContent = label;
  const parts: SVGElement[] = [title];
  for (const y of [PAD, (H + PAD) / 2]) parts.push(el("line", { x1: "0", x2: String(W), y1: String(y), y2: String(y) }));
  if (xy.length > 0) {
    const first = xy[0]!.split(",")[0];
    const last = xy[xy.length - 1]!.split(",")[0];
    parts.push(el("polygon", { points: `${first},${H} ${xy.join(" ")} ${last},${H}` }));
    parts.push(el("polyline", { points: xy.join(" ") }));
  }
  svg.replaceChildren(...parts);
  return top;
}
