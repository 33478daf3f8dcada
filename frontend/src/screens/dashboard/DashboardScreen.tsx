import { useParams } from "react-router-dom";
import { DashboardView } from "./DashboardView";

/** Manager dashboards for one project (route /projects/:slug/dashboard). */
export function DashboardScreen() {
  const { slug = "" } = useParams();
  return <DashboardView key={slug} slug={slug} />;
}
