"""Steps: data sources, prompt steps, task steps and operations; DataDreamer's
``concat``, ``zipped``, ``wait``, ``concurrent``, ``DataCardType``, ``LazyRows``,
``LazyRowBatches`` and ``SuperStep`` for custom steps."""

from typing import TYPE_CHECKING

from ..cards import DataCardType
from ..lazy_exports import lazy_exports

if TYPE_CHECKING:
    from .background import concurrent, wait
    from .data_sources import (
        CSVDataSource,
        DataSource,
        HFDatasetDataSource,
        HFHubDataSource,
        JSONDataSource,
        TextDataSource,
    )
    from .operations.functions import concat, zipped
    from .prompt import (
        DataFromAttributedPrompt,
        DataFromPrompt,
        FewShotPrompt,
        FilterWithPrompt,
        JudgeGenerationPairsWithPrompt,
        JudgePairsWithPrompt,
        ProcessWithPrompt,
        Prompt,
        PromptStepError,
        RankWithPrompt,
    )
    from .prompt.few_shot_prompt_with_retrieval import FewShotPromptWithRetrieval
    from .prompt.rag_prompt import RAGPrompt
    from .registration import LazyRowBatches, LazyRows
    from .step import Step, StepDeclarationError, StepDeclarationTypeError
    from .super_step import SuperStep
    from .tasks import CosineSimilarity, Embed, Retrieve, RunTaskModel

_EXPORTS = {
    "concurrent": ".background",
    "wait": ".background",
    "CSVDataSource": ".data_sources",
    "DataSource": ".data_sources",
    "HFDatasetDataSource": ".data_sources",
    "HFHubDataSource": ".data_sources",
    "JSONDataSource": ".data_sources",
    "TextDataSource": ".data_sources",
    "concat": ".operations.functions",
    "zipped": ".operations.functions",
    "DataFromAttributedPrompt": ".prompt",
    "DataFromPrompt": ".prompt",
    "FewShotPrompt": ".prompt",
    "FilterWithPrompt": ".prompt",
    "JudgeGenerationPairsWithPrompt": ".prompt",
    "JudgePairsWithPrompt": ".prompt",
    "ProcessWithPrompt": ".prompt",
    "Prompt": ".prompt",
    "PromptStepError": ".prompt",
    "RankWithPrompt": ".prompt",
    "FewShotPromptWithRetrieval": ".prompt.few_shot_prompt_with_retrieval",
    "RAGPrompt": ".prompt.rag_prompt",
    "LazyRowBatches": ".registration",
    "LazyRows": ".registration",
    "Step": ".step",
    "StepDeclarationError": ".step",
    "StepDeclarationTypeError": ".step",
    "SuperStep": ".super_step",
    "CosineSimilarity": ".tasks",
    "Embed": ".tasks",
    "Retrieve": ".tasks",
    "RunTaskModel": ".tasks",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

__all__ = [
    "CSVDataSource",
    "CosineSimilarity",
    "DataCardType",
    "DataFromAttributedPrompt",
    "DataFromPrompt",
    "DataSource",
    "Embed",
    "FewShotPrompt",
    "FewShotPromptWithRetrieval",
    "FilterWithPrompt",
    "HFDatasetDataSource",
    "HFHubDataSource",
    "JSONDataSource",
    "JudgeGenerationPairsWithPrompt",
    "JudgePairsWithPrompt",
    "LazyRowBatches",
    "LazyRows",
    "ProcessWithPrompt",
    "Prompt",
    "PromptStepError",
    "RAGPrompt",
    "RankWithPrompt",
    "Retrieve",
    "RunTaskModel",
    "Step",
    "StepDeclarationError",
    "StepDeclarationTypeError",
    "SuperStep",
    "TextDataSource",
    "concat",
    "concurrent",
    "wait",
    "zipped",
]
