//! `rucat-ballista-client URL SQL`: runs one SQL statement on a Ballista
//! cluster and prints the result, for rucat's tests.
//!
//! A real client (the `ballista` crate's `SessionContext::remote`), so a test
//! proves the cluster plans and executes a query end to end. The output is
//! meant to be compared exactly: one line per row, the values separated by
//! `,`, no header and no table borders (`SELECT sum(v) FROM (SELECT
//! unnest(range(1000)) AS v)` prints `499500`; a null prints as an empty
//! value; `range(N)` as a table cannot be sent to a cluster, its plan does
//! not serialize). Any error goes to
//! stderr with exit code 1.

use std::process::ExitCode;

use ballista::datafusion::arrow::array::RecordBatch;
use ballista::datafusion::arrow::error::ArrowError;
use ballista::datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use ballista::datafusion::error::DataFusionError;
use ballista::datafusion::execution::context::SessionContext;
use ballista::prelude::SessionContextExt;

const USAGE: &str = "usage: rucat-ballista-client df://HOST:PORT SQL";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [url, sql] = args.as_slice() else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    // Planning recurses deeply (more so unoptimized): run on a worker thread
    // with a large stack, as the scheduler does.
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(32 * 1024 * 1024)
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let (url, sql) = (url.clone(), sql.clone());
    let result = runtime.block_on(async move { tokio::spawn(query(url, sql)).await });
    match result {
        Ok(Ok(lines)) => {
            for line in lines {
                println!("{line}");
            }
            ExitCode::SUCCESS
        }
        Ok(Err(e)) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("error: the query task failed: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs `sql` on the cluster at `url` and renders the rows.
async fn query(url: String, sql: String) -> Result<Vec<String>, DataFusionError> {
    let ctx = SessionContext::remote(&url).await?;
    let batches = ctx.sql(&sql).await?.collect().await?;
    let mut lines = Vec::new();
    for batch in &batches {
        render(batch, &mut lines)?;
    }
    Ok(lines)
}

/// Appends one line per row of `batch`: each value displayed as DataFusion
/// displays it, joined with `,`.
fn render(batch: &RecordBatch, lines: &mut Vec<String>) -> Result<(), ArrowError> {
    let options = FormatOptions::default();
    let formatters = batch
        .columns()
        .iter()
        .map(|column| ArrayFormatter::try_new(column.as_ref(), &options))
        .collect::<Result<Vec<_>, _>>()?;
    for row in 0..batch.num_rows() {
        let values: Vec<String> = formatters
            .iter()
            .map(|f| f.value(row).to_string())
            .collect();
        lines.push(values.join(","));
    }
    Ok(())
}
