// A React app made of the guide's components (docs/guides/react.md, taken by name when the test
// builds it: `guide:react/NAME`). The page's query says what to show (`view=islands`: two React
// roots sharing one connection); `window.app` lets the test change the token or unmount
// everything, as an app's own state would.
import { StrictMode, useEffect, useState, type ReactNode } from "react";
import { createRoot } from "react-dom/client";
import { HibercastProvider, SharedConnection } from "hibercast/react";
import { Answer } from "guide:react/answer";
import { Goals } from "guide:react/callback";
import { Chat } from "guide:react/chat";
import { WhoIsHere } from "guide:react/presence";
import { Live } from "guide:react/provider";
import { ConnectionBanner } from "guide:react/status";
import type { AppControls } from "./controls";

const query = new URLSearchParams(location.search);
const url = query.get("url")!;
const channel = query.get("channel")!;

const views: Record<string, () => ReactNode> = {
  chat: () => <Chat channel={channel} />,
  // Three components on one channel: one subscription between them.
  shared: () => (
    <>
      <Chat channel={channel} />
      <Chat channel={channel} />
      <Goals channel={channel} />
    </>
  ),
  goals: () => <Goals channel={channel} />,
  answer: () => (
    <>
      <ConnectionBanner />
      <Answer channel={channel} id={query.get("id")!} />
    </>
  ),
  presence: () => <WhoIsHere channel={channel} />,
};

const controls: AppControls = { setToken: () => {}, setMounted: () => {}, answers: [], banners: [] };
window.app = controls;

function Harness() {
  const [token, setToken] = useState(query.get("token") ?? undefined);
  const [mounted, setMounted] = useState(true);
  useEffect(() => {
    controls.setToken = setToken;
    controls.setMounted = setMounted;
  }, []);
  return mounted ? <Live url={url} token={token}>{views[query.get("view")!]!()}</Live> : <p className="unmounted">unmounted</p>;
}

// What the page showed, commit by commit, for the test to check after the fact.
new MutationObserver(() => {
  const answer = document.querySelector(".answer")?.textContent;
  if (answer !== undefined && answer !== controls.answers.at(-1)) controls.answers.push(answer);
  const banner = document.querySelector(".banner")?.textContent;
  if (banner && banner !== controls.banners.at(-1)) controls.banners.push(banner);
}).observe(document.body, { subtree: true, childList: true, characterData: true });

// StrictMode over everything, as apps set it up: in development every effect runs, is cleaned
// up and runs again on mount (also when the test mounts the app again).
if (query.get("view") === "islands") {
  // Two React roots on one page (islands), sharing one connection made outside React.
  const connection = new SharedConnection({ url });
  for (const id of ["root", "island"]) {
    const element = document.getElementById(id) ?? document.body.appendChild(Object.assign(document.createElement("div"), { id }));
    createRoot(element).render(
      <StrictMode>
        <HibercastProvider connection={connection}>
          <Chat channel={channel} />
        </HibercastProvider>
      </StrictMode>,
    );
  }
} else {
  createRoot(document.getElementById("root")!).render(
    <StrictMode>
      <Harness />
    </StrictMode>,
  );
}
