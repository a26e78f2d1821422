"""The Python side of scripts/notebooks.ts.

`kernels` prints the registered kernel names as JSON (what `jupyter kernelspec list` shows);
`run` executes one notebook with nbclient and writes a JSON report. The report goes to a file,
as the kernel shares this process's stdout.
"""
import json, os, sys, time

def kernels():
    from jupyter_client.kernelspec import KernelSpecManager
    import nbclient  # noqa: F401 (fails early when nbclient is missing)
    print(json.dumps(sorted(KernelSpecManager().find_kernel_specs())))

def _client_class():
    from queue import Empty
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionComplete
    try:
        from nbclient.util import ensure_async
    except ImportError:
        from jupyter_core.utils import ensure_async

    class Client(NotebookClient):
        """nbclient, made to keep outputs that Deno's kernel sends after its idle status.

        nbclient takes status idle as the end of a cell's outputs; Deno's kernel (2.x)
        sometimes publishes idle before the cell's execute_result, display_data, stream or
        error messages, and nbclient then drops them. Here such late messages go to their
        cell, whether they arrive while a later cell runs or in a final drain.
        """

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self._finished = {}

        def _late(self, msg):
            target = self._finished.get(msg["parent_header"].get("msg_id"))
            if target is None or msg["msg_type"] in ("status", "execute_input"):
                return
            try:
                self.process_message(msg, target[0], target[1])
            except CellExecutionComplete:
                pass

        async def _async_poll_output_msg(self, parent_msg_id, cell, cell_index):
            while True:
                msg = await ensure_async(self.kc.iopub_channel.get_msg(timeout=None))
                if msg["parent_header"].get("msg_id") != parent_msg_id:
                    self._late(msg)
                    continue
                try:
                    self.process_message(msg, cell, cell_index)
                except CellExecutionComplete:
                    self._finished[parent_msg_id] = (cell, cell_index)
                    return

        async def drain(self, quiet):
            while True:
                try:
                    msg = await ensure_async(self.kc.iopub_channel.get_msg(timeout=quiet))
                except Empty:
                    return
                self._late(msg)

        async def run_cells(self, on_cell):
            async with self.async_setup_kernel():
                msg_id = await ensure_async(self.kc.kernel_info())
                info = await self.async_wait_for_reply(msg_id)
                if info is not None and "language_info" in info["content"]:
                    self.nb.metadata["language_info"] = info["content"]["language_info"]
                try:
                    for index, cell in enumerate(self.nb.cells):
                        on_cell(index)
                        await self.async_execute_cell(
                            cell, index, execution_count=self.code_cells_executed + 1
                        )
                finally:
                    await self.drain(0.3)

    return Client

def run(source, ok_output, failed_output, report_path, timeout, kernel, cwd):
    import asyncio
    import nbformat
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError
    nb = nbformat.read(source, as_version=4)
    deadline = time.monotonic() + float(timeout)
    current = {"index": -1}
    client = _client_class()(
        nb,
        kernel_name=kernel,
        timeout_func=lambda cell: max(1, int(deadline - time.monotonic() + 0.999)),
        startup_timeout=max(1, int(float(timeout))),
        record_timing=False,
        resources={"metadata": {"path": cwd}},
    )
    def on_cell(index):
        current["index"] = index
    failure = None
    try:
        asyncio.run(client.run_cells(on_cell))
    except BaseException as error:
        index = current["index"]
        cell = nb.cells[index] if 0 <= index < len(nb.cells) else None
        if isinstance(error, CellExecutionError):
            kind, ename, evalue, traceback = "error", error.ename, error.evalue, ""
            for output in (cell.get("outputs", []) if cell is not None else []):
                if output.get("output_type") == "error":
                    traceback = "\n".join(output.get("traceback", []))
            traceback = traceback or str(error)
        elif isinstance(error, CellTimeoutError):
            kind, ename, evalue, traceback = "timeout", "TimeoutError", "the notebook ran past its " + timeout + " s", ""
        elif isinstance(error, DeadKernelError):
            kind, ename, evalue, traceback = "dead", "DeadKernelError", str(error), ""
        else:
            import traceback as tb
            kind, ename, evalue, traceback = "setup", type(error).__name__, str(error), tb.format_exc()
            cell = None
        failure = {
            "kind": kind,
            "cell": index + 1 if cell is not None else 0,
            "source": cell.source if cell is not None else "",
            "ename": ename,
            "evalue": evalue,
            "traceback": traceback,
        }
    output = ok_output if failure is None else failed_output
    # Write then rename, so an interrupted --inplace run never truncates a committed notebook.
    temp = "%s.%d.tmp" % (output, os.getpid())
    nbformat.write(nb, temp)
    os.replace(temp, output)
    report = {"ok": failure is None, "written": True}
    if failure is not None:
        report["failure"] = failure
    with open(report_path, "w") as handle:
        json.dump(report, handle)

if sys.argv[1] == "kernels":
    kernels()
else:
    run(*sys.argv[2:9])
