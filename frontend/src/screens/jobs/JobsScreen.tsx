import { Placeholder } from "../../layout/Layout";
import { useT } from "../../i18n";

/** Jobs with live progress (route /jobs). Placeholder: built by the jobs helper. */
export function JobsScreen() {
  const t = useT();
  return <Placeholder title={t("jobs.title")} />;
}
