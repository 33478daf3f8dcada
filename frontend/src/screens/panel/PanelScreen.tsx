import { useParams } from "react-router-dom";
import { Placeholder } from "../../layout/Layout";
import { useT } from "../../i18n";

/** Expert panel review of one case (route /cases/:caseId/panel). Placeholder: built by the panel helper. */
export function PanelScreen() {
  const t = useT();
  const { caseId } = useParams();
  return <Placeholder title={`${t("panel.title")}: ${caseId ?? ""}`} />;
}
