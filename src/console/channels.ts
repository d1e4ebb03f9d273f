// The occupied channels, from `GET /v1/channels` (the directory the hubs keep while the Pusher
// endpoint is on). It names private channels too, so it takes the publish key.

/** The names, or why there are none to show; `service` is the folder the console is served from. */
export async function occupied(service: URL, key: string): Promise<string[] | string> {
  if (key === "") return "Enter the publish key (under Publish) to list them.";
  try {
    const res = await fetch(new URL("v1/channels", service), { headers: { authorization: `Bearer ${key}` } });
    const body = await res.json();
    if (!res.ok) return `${res.status} ${body.error?.code}: ${body.error?.message}`;
    return body.channels as string[];
  } catch {
    return "server unreachable";
  }
}

/** A button per channel (keyboard-reachable); the watched ones are marked current. */
export function render(list: HTMLUListElement, note: HTMLElement, names: string[] | string, watching: string[], pick: (channel: string) => void): void {
  list.replaceChildren();
  if (typeof names === "string" || names.length === 0) {
    note.textContent = typeof names === "string" ? names : "None: no channel has a subscriber.";
    note.hidden = false;
    return;
  }
  note.hidden = true;
  for (const name of names) {
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = name;
    if (watching.includes(name)) button.setAttribute("aria-current", "true");
    button.addEventListener("click", () => pick(name));
    const li = document.createElement("li");
    li.append(button);
    list.append(li);
  }
}
