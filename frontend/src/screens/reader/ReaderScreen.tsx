import { Placeholder } from "../../layout/Layout";

export function ReaderScreen() {
  return <Placeholder title="Reader" />;
}
