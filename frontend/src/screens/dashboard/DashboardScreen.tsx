import { useParams } from "react-router-dom";
import { Placeholder } from "../../layout/Layout";
import { useT } from "../../i18n";

/** Manager dashboards for one project (route /projects/:slug/dashboard). Placeholder: built by the dashboards helper. */
export function DashboardScreen() {
  const t = useT();
  const { slug } = useParams();
  return <Placeholder title={`${t("dashboard.title")}: ${slug ?? ""}`} />;
}
