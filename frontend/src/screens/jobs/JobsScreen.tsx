import { JobsView } from "./JobsView";

/** Jobs with live progress (route /jobs?project=<slug>&kind=...&status=...). */
export function JobsScreen() {
  return <JobsView />;
}
