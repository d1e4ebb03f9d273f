// What the app lets the test do and read in the page (`window.app`), as the app's own state would.
export interface AppControls {
  setToken(token: string | undefined): void;
  setMounted(mounted: boolean): void;
  /** Every text the answer showed, one per commit, in order. */
  answers: string[];
  /** Every connection banner shown. */
  banners: string[];
}

declare global {
  interface Window {
    app: AppControls;
  }
}
